"""Group posteriors: the product of per-scan likelihoods sampled with emcee is right where the
answer is known (Gaussian likelihoods on a wide box: the Gaussian product; the same
likelihood twice: half the variance), one scan is the per-scan posterior, and the refusals
are one line with exit status 2."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import ks_2samp

from gbsbi.errors import GbsbiError
from gbsbi.group.config import GroupPrior, GroupSettings
from gbsbi.group.law import K_B_EV, GroupModel
from gbsbi.group.sample import sample_group


def _gaussian(means: np.ndarray, sds: np.ndarray):  # noqa: ANN202
    """Each scan's log-likelihood: independent Gaussians in u with these means and sds,
    shapes (n, 3); (m, n, 3) -> (m, n)."""
    def log_likelihood(u: np.ndarray) -> np.ndarray:
        return -0.5 * np.sum(((u - means) / sds) ** 2, axis=-1)

    return log_likelihood


SETTINGS = GroupSettings(draws=4000, walkers=32, max_steps=8000, seed=3, temper=1.0)  # the product


def test_gaussian_scans_give_the_gaussian_product():
    """Three scans, all parameters shared, Gaussian likelihoods well inside the unit box (the
    box cuts off less than 1e-6 of the product): the posterior is Gaussian with precision
    the sum of precisions. 4,000 correlated draws (ESS of several hundred): means within
    0.01 (10 posterior sd over sqrt(ESS) is 0.004), sds within 10 %."""
    means = np.array([[0.40, 0.50, 0.45], [0.45, 0.55, 0.50], [0.50, 0.45, 0.40]])
    sds = np.array([[0.05, 0.08, 0.06], [0.06, 0.05, 0.07], [0.08, 0.06, 0.05]])
    model = GroupModel(np.array([300.0, 400.0, 500.0]), "none", ("D", "sigma", "c"))
    draws = sample_group(model, _gaussian(means, sds), SETTINGS)
    precision = (1 / sds**2).sum(axis=0)
    expected_mean = (means / sds**2).sum(axis=0) / precision
    z = draws.z.reshape(-1, 3)
    np.testing.assert_allclose(z.mean(axis=0), expected_mean, atol=0.01)
    np.testing.assert_allclose(z.std(axis=0), 1 / np.sqrt(precision), rtol=0.1)
    assert draws.log_likelihood.shape == (4, 1000, 3)


def test_the_same_likelihood_twice_halves_the_variance():
    """One scan's Gaussian likelihood, and the same twice: the variance of every shared
    parameter halves (ratio 0.5 within 15 %: two estimates of a variance from a few hundred
    effective draws each)."""
    mean, sd = np.array([[0.5, 0.4, 0.6]]), np.array([[0.05, 0.07, 0.06]])
    one = sample_group(GroupModel(np.array([400.0]), "none", ("D", "sigma", "c")),
                       _gaussian(mean, sd), SETTINGS)
    two = sample_group(GroupModel(np.array([400.0, 400.0]), "none", ("D", "sigma", "c")),
                       _gaussian(np.repeat(mean, 2, 0), np.repeat(sd, 2, 0)), SETTINGS)
    ratio = two.z.reshape(-1, 3).var(axis=0) / one.z.reshape(-1, 3).var(axis=0)
    np.testing.assert_allclose(ratio, 0.5, rtol=0.15)


def test_a_tempered_product_widens_by_its_power():
    """temper lambda raises each likelihood to lambda: a Gaussian's variance grows by 1 /
    lambda (ratio 2 within 15 %, as above); a power outside (0, 1] is refused."""
    mean, sd = np.array([[0.5, 0.4, 0.6]]), np.array([[0.05, 0.07, 0.06]])
    model = GroupModel(np.array([400.0]), "none", ("D", "sigma", "c"))
    full = sample_group(model, _gaussian(mean, sd), SETTINGS)
    half = sample_group(model, _gaussian(mean, sd), replace(SETTINGS, temper=0.5))
    ratio = half.z.reshape(-1, 3).var(axis=0) / full.z.reshape(-1, 3).var(axis=0)
    np.testing.assert_allclose(ratio, 2.0, rtol=0.15)
    with pytest.raises(GbsbiError, match="--temper"):
        GroupSettings(temper=0.0)


def test_the_arrhenius_law_and_its_support():
    prior = GroupPrior(d_ref=(0.0, 5e-4), ea=(0.0, 1.0), t_ref=400.0)
    model = GroupModel(np.array([350.0, 400.0, 450.0]), "arrhenius", ("sigma", "c"),
                       group_prior=prior)
    assert model.group_names == ("D_ref", "Ea", "sigma", "c") and model.dim == 4
    z = np.array([[0.2, 0.3, 0.5, 0.5]])
    D = model.physical(z)["D_scan"][0]
    d_ref, ea = 1e-4, 0.3
    np.testing.assert_allclose(D, d_ref * np.exp(-ea / K_B_EV * (1 / model.temperature
                                                                 - 1 / 400.0)), rtol=1e-9)
    assert D[1] == pytest.approx(d_ref)  # at T_ref
    assert model.inside(z)[0]
    hot = np.array([[0.9, 0.9, 0.5, 0.5]])  # D at 450 K far beyond 5e-4: zero density
    assert not model.inside(hot)[0]


def test_a_flat_likelihood_under_the_arrhenius_law_gives_its_prior():
    """With every scan's likelihood flat, the group posterior is its prior: D_ref and Ea
    uniform, restricted to the support (no scan's D above the per-scan prior). The sampler
    works in other coordinates (GroupModel.from_box, a logit), so this checks their
    Jacobians. The reference is rejection sampling of the prior (400,000 uniform draws);
    KS distance of 4,000 thinned, correlated draws (ESS of several hundred): below 0.08, where
    a missing Jacobian of D_ref shifts the distance to 0.2 and more."""
    model = GroupModel(np.array([300.0, 400.0, 480.0]), "arrhenius", ("sigma", "c"))
    draws = sample_group(model, lambda u: np.zeros(u.shape[:2]), SETTINGS)
    z = draws.z.reshape(-1, model.dim)
    reference = np.random.default_rng(0).random((400_000, model.dim))
    reference = reference[model.inside(reference)]
    for k in range(model.dim):
        assert ks_2samp(z[:, k], reference[:, k]).statistic < 0.08, model.group_names[k]


def test_the_sampler_coordinates_cover_the_support():
    """from_box maps the unit box onto a set that holds the whole support: every z inside
    the support has a w in the box (found by inverting the map of D_ref)."""
    model = GroupModel(np.array([300.0, 350.0, 450.0]), "arrhenius", ("sigma", "c"))
    z = np.random.default_rng(1).random((20_000, model.dim))
    z = z[model.inside(z)]
    w = z.copy()
    w[:, 0] = 0.5
    scale = model.from_box(w)[0][:, 0] / 0.5  # z_0 = w_0 * scale with the default priors
    w[:, 0] = z[:, 0] / scale
    assert np.all((w >= 0) & (w <= 1))
    np.testing.assert_allclose(model.from_box(w)[0], z, atol=1e-12)


def test_bad_groups_are_refused():
    with pytest.raises(GbsbiError, match="two temperatures"):
        GroupModel(np.array([400.0, 400.0]), "arrhenius", ("sigma", "c"))
    with pytest.raises(GbsbiError, match="leave D out"):
        GroupModel(np.array([300.0, 400.0]), "arrhenius", ("D",))
    with pytest.raises(GbsbiError, match="--shared"):
        GroupModel(np.array([300.0]), "none", ("E",))
    with pytest.raises(GbsbiError, match="multiple of 4"):
        GroupSettings(draws=10)
    with pytest.raises(GbsbiError, match="--members must be 0"):
        GroupSettings(members=-1)
    with pytest.raises(GbsbiError, match="low < high"):
        GroupPrior(ea=(1.0, 0.5))


torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A small posterior estimator (600 maps, 3 epochs) and pseudo-experiments of two groups
    at three temperatures."""
    from gbsbi.bank import BankSpec, simulate_bank
    from gbsbi.inference.config import TrainConfig
    from gbsbi.inference.pipeline import train_model
    from gbsbi.pseudo import PseudoSpec, write_pseudo_experiments
    from simulators.config import ExperimentConfig, MeasurementPrior, Prior

    root = tmp_path_factory.mktemp("group")
    simulate_bank(root / "bank.h5", BankSpec(ExperimentConfig(), Prior(), 600, 4,
                                             measurement="fast"))
    train_model(root / "bank.h5", root / "model", TrainConfig(epochs=3), log=lambda s: None,
                show_progress=False)
    spec = PseudoSpec(groups=2, temperatures=(320.0, 400.0, 480.0), repeats=1, mode="fast",
                      seed=5)
    write_pseudo_experiments(root / "pseudo.h5", spec, ExperimentConfig(), Prior(),
                             MeasurementPrior())
    return root


def test_one_scan_is_its_own_posterior(work):
    """A group of one scan with nothing shared samples q(u | x) itself, by emcee: C2ST
    against the flow's own draws near 0.5 (below 0.6: 500 against 500 draws, a classifier
    on correlated MCMC draws). 500 draws, not 2,000: draws closer than one autocorrelation
    time repeat points (rejected proposals), and a classifier recognises a repeated point
    across its folds; on this model 2,000 draws gave C2ST 0.59-0.64 for three seeds, 0.51
    with the repeats removed, and 500 draws (four times further apart) 0.47-0.51."""
    from gbsbi.group import group_posterior
    from gbsbi.inference import load_posterior
    from gbsbi.inference.sbi_tools import c2st_score
    from gbsbi.io.mapsfile import read_maps

    posterior = load_posterior(work / "model")
    maps = read_maps(work / "pseudo.h5")
    data = group_posterior(posterior, maps.C[:1], maps.temperature[:1], law="none", shared=(),
                           settings=GroupSettings(draws=500, seed=1, temper=1.0))
    joint = np.stack([data.posterior[f"{n}_scan"].values[..., 0].ravel()
                      for n in ("D", "sigma", "c")], axis=-1)
    x = posterior.observe(maps.C[:1], temperature=maps.temperature[:1])
    torch.manual_seed(1)
    direct = posterior.sample((500,), x=x[0]).numpy()
    prior = posterior.prior
    assert c2st_score(prior.to_unit(joint), prior.to_unit(direct), seed=0) < 0.6


def test_gbsbi_group_writes_group_posteriors_that_arviz_compares(work, capsys):
    import warnings

    from gbsbi.cli import main
    from gbsbi.io.posteriors import arviz

    out = work / "groups.nc"
    assert main(["group", str(work / "model"), str(work / "pseudo.h5"), "--out", str(out),
                 "--law", "arrhenius", "--draws", "400", "--include-flagged"]) == 0
    free = work / "free.nc"
    assert main(["group", str(work / "model"), str(work / "pseudo.h5"), "--out", str(free),
                 "--shared", "sigma,c", "--draws", "400", "--include-flagged",
                 "--no-plots"]) == 0
    az = arviz()
    data = az.from_netcdf(str(out))
    assert data.posterior["Ea"].dims == ("chain", "draw", "group")
    assert data.posterior["D_ref"].attrs["units"] == "nm^2/s"
    assert data.log_likelihood["maps"].dims == ("chain", "draw", "scan")
    with warnings.catch_warnings():  # PSIS's notes on a few hundred draws
        warnings.simplefilter("ignore")
        table = az.compare({"arrhenius": data, "free D": az.from_netcdf(str(free))})
    assert set(table.index) == {"arrhenius", "free D"}
    for g in ("group-1", "group-2"):
        assert (work / f"groups-{g}.csv").exists()
        assert (work / "groups-plots" / f"arrhenius_{g}.png").exists()
        assert (work / "groups-plots" / f"corner_{g}.png").exists()


def _error(capsys, argv: list[str]) -> str:
    from gbsbi.cli import main

    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_a_group_at_one_temperature_or_sharing_data_is_refused(work, capsys, monkeypatch):
    from gbsbi.io.mapsfile import Maps, read_maps, write_maps

    maps = read_maps(work / "pseudo.h5")
    one = np.flatnonzero(maps.temperature == 400.0)
    write_maps(work / "one_t.h5", Maps(maps.C[one], maps.t, maps.temperature[one],
                                       maps.q[one], maps.scan[one], maps.group[one]))
    err = _error(capsys, ["group", str(work / "model"), str(work / "one_t.h5"), "--out",
                          str(work / "bad.nc"), "--law", "arrhenius", "--include-flagged"])
    assert "two temperatures" in err
    twice = np.r_[0, 0, 1]
    write_maps(work / "twice.h5", Maps(maps.C[twice], maps.t, maps.temperature[twice],
                                       maps.q[twice], np.array(["a", "b", "c"]),
                                       np.array(["g", "g", "g"])))
    err = _error(capsys, ["group", str(work / "model"), str(work / "twice.h5"), "--out",
                          str(work / "bad.nc"), "--include-flagged"])
    assert "share data" in err or "same map" in err
    import gbsbi.inference.data

    def reached(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise GbsbiError("the maps were read before --members was checked")

    with monkeypatch.context() as patch:  # the check comes before any work
        patch.setattr(gbsbi.inference.data, "scan_inputs", reached)
        err = _error(capsys, ["group", str(work / "model"), str(work / "pseudo.h5"), "--out",
                              str(work / "bad.nc"), "--members", "2"])
    assert "--members 2: must be 0" in err and "to 1, the member(s)" in err  # one member
    err = _error(capsys, ["group", str(work / "model"), str(work / "pseudo.h5"), "--out",
                          str(work / "bad.nc"), "--members", "-1"])
    assert "--members" in err
    assert not (work / "bad.nc").exists()


def test_the_arrhenius_plot_of_a_group_with_a_scan_left_out(tmp_path):
    """A scan left out of its group (a flagged one) has no draws of its own: the Arrhenius
    plot shows the scans joined (it failed on a flagged scan: 'x' and 'y' must have the same
    size)."""
    from gbsbi.group.files import to_inference_data
    from gbsbi.group.sample import GroupDraws
    from gbsbi.plots.group import arrhenius_plot

    model = GroupModel(np.array([300.0, 400.0]), "arrhenius", ("sigma", "c"))
    rng = np.random.default_rng(0)
    z = 0.2 + 0.1 * rng.random((4, 50, model.dim))
    draws = GroupDraws(z, np.zeros((4, 50, 2)), np.ones(4), np.full(4, 100.0), np.ones(4),
                       100, True, 0.1)
    data = to_inference_data({"g": (model, draws, np.array([0, 2]))},
                             np.array(["a", "b", "c"], dtype=object),
                             np.array([300.0, 350.0, 400.0]), np.full(3, "g", dtype=object),
                             None, {})
    per_scan = 1e-4 * (1 + 0.1 * rng.random((100, 2)))
    path = arrhenius_plot(data, "g", model, per_scan, tmp_path / "arrhenius.png",
                          np.array([0, 2]))
    assert path.stat().st_size > 1000


def test_a_posterior_with_two_modes_keeps_both():
    """One scan whose likelihood has two equal, well-separated modes in D (u = 0.25 and 0.75,
    sd 0.03: 8 sd apart, the shape of an ensemble whose members disagree): half the draws
    fall in each. The start (the most probable of uniform candidates) finds both, and the
    differential-evolution moves carry walkers between them; a sampler stuck in one mode
    gives 0 or 1 (0.3-0.7: over 7 binomial sd of 32 walkers split at random)."""
    def log_likelihood(u: np.ndarray) -> np.ndarray:
        rest = -0.5 * np.sum(((u[..., 1:] - 0.5) / 0.1) ** 2, axis=-1)
        modes = [-0.5 * ((u[..., 0] - m) / 0.03) ** 2 for m in (0.25, 0.75)]
        return np.logaddexp(*modes) + rest

    model = GroupModel(np.array([400.0]), "none", ("D", "sigma", "c"))
    draws = sample_group(model, log_likelihood, SETTINGS)
    u = model.unit(draws.z.reshape(-1, 3))[:, 0, 0]
    assert 0.3 < (u < 0.5).mean() < 0.7
