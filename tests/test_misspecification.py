"""The misspecification tests on known distributions: a density fitted on Gaussian "features"
accepts fresh draws of the same Gaussian at the nominal rate and rejects a shifted one; the
p-values are sbi's calc_misspecification_logprob's; the set-level MMD test tells the two sets
apart. Fixed seeds throughout."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from gbsbi.inference.misspecification import MisspecConfig, fit_density  # noqa: E402
from gbsbi.validation.misspecification import reference_pvalues as scan_pvalues  # noqa: E402
from gbsbi.validation.misspecification import set_test  # noqa: E402

DIM = 4


@pytest.fixture(scope="module")
def reference():
    g = torch.Generator().manual_seed(0)
    heldout = torch.randn(1500, DIM, generator=g)
    return fit_density(heldout, MisspecConfig(hidden=32, transforms=2, max_epochs=200))


def _draws(n: int, shift: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, DIM, generator=g)
    x[:, 0] += shift
    return x


def test_unshifted_scans_are_flagged_at_the_nominal_rate(reference):
    p = scan_pvalues(reference, _draws(1000, 0.0, 1))
    # 1000 scans at alpha = 0.05: binomial sd 0.007; the null has 600 reference points (the
    # 0.05 quantile moves by about 0.009) and the fitted density is not exact, so 0.03-0.08
    # (about 3 sd of both together) is the accepted range.
    assert 0.03 <= (p < 0.05).mean() <= 0.08
    # p-values of scans from the reference distribution are about uniform
    assert abs(np.median(p) - 0.5) < 0.05


def test_a_shifted_gaussian_is_flagged(reference):
    # A shift of 5 sd along one axis. With the exact density a scan is flagged when |x|^2
    # exceeds chi2_4's 0.95 quantile (9.49); shifted, |x|^2 is non-central chi2_4 with
    # lambda = 25, above 9.49 with probability 0.989. 1000 scans: sd 0.003; 0.96 leaves room
    # for the fitted density's error.
    p = scan_pvalues(reference, _draws(1000, 5.0, 2))
    assert (p < 0.05).mean() >= 0.96


def test_p_values_are_sbis_calc_misspecification_logprob(reference):
    import warnings

    from sbi.diagnostics import calc_misspecification_logprob

    x = _draws(3, 1.5, 3)
    ours = scan_pvalues(reference, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        theirs = [float(calc_misspecification_logprob(reference.features, x[k:k + 1],
                                                      reference.density)[0])
                  for k in range(3)]
    np.testing.assert_allclose(ours, theirs)


def test_set_level_mmd_accepts_the_same_and_rejects_a_shift(reference):
    same = set_test(reference.features.numpy(), _draws(50, 0.0, 4).numpy(), n_shuffle=300,
                    seed=0)
    shifted = set_test(reference.features.numpy(), _draws(50, 1.0, 5).numpy(), n_shuffle=300,
                       seed=0)
    # fixed seeds: a same-distribution set has p uniform (here well above 0.05); a 1 sd shift
    # of 50 points is far beyond the permutation null (p = 0 of 300 shuffles)
    assert same["p_value"] > 0.05 and shifted["p_value"] < 0.01
    assert shifted["mmd"] > same["null_q05_q50_q95"][2]


@pytest.mark.slow
# Was a strict xfail (the BNL map at p = 0.42 with this small model's density at C2ST 0.93);
# with the density trained at a learning rate of 2e-3 the map is flagged.
def test_a_trained_model_flags_the_real_bnl_map_and_few_simulations(tmp_path, capsys):
    """End to end: `gbsbi train` fits the reference; the real BNL map (photon-noise
    dominated, not this physics) is flagged by `gbsbi infer`, fresh simulations of the model
    at no more than twice the nominal rate."""
    from pathlib import Path

    from gbsbi.bank import BankSpec, simulate_bank
    from gbsbi.cli import main
    from simulators.config import ExperimentConfig, Prior

    torch.set_num_threads(2)
    bank, fresh = tmp_path / "bank.h5", tmp_path / "fresh.h5"
    simulate_bank(bank, BankSpec(ExperimentConfig(), Prior(), 8000, 5, measurement="fast"),
                  workers=2)
    simulate_bank(fresh, BankSpec(ExperimentConfig(), Prior(), 300, 6, measurement="fast"))
    assert main(["train", str(bank), "--out", str(tmp_path / "m"), "--epochs", "15"]) == 0
    data = Path(__file__).parent / "data" / "bnl_two_time_350.npy"
    assert main(["import", str(data), "--out", str(tmp_path / "bnl.h5"), "--temperature",
                 "350", "--q", "1.0", "--frame-time", str(2000 / 350)]) == 0
    capsys.readouterr()
    assert main(["infer", str(tmp_path / "m"), str(tmp_path / "bnl.h5"), "--out",
                 str(tmp_path / "bnl.nc"), "--draws", "40", "--no-plots"]) == 0
    assert "is unlike the simulations" in capsys.readouterr().err
    assert main(["misspec", str(tmp_path / "m"), str(fresh), "--out",
                 str(tmp_path / "fresh")]) == 0
    import json

    rate = json.loads((tmp_path / "fresh" / "misspec.json").read_text())["flag_rate"]
    # 300 maps at alpha = 0.05: binomial sd 0.013, and the null of an 8000-map bank has 320
    # simulations (300 for the predictive statistics; its 0.05 quantile moves by 0.012): at
    # most twice the nominal rate, 2.8 sd of both. (With a 3000-map bank the null had 120
    # simulations, sd 0.02, and one fresh set reached 0.103 with 0.063-0.077 on three others:
    # the bound was 2 sd of that setup. Measured with 8000 maps: 0.067, 0.043, 0.047.)
    assert rate <= 0.10
