"""The per-scan misspecification test of a trained model (slow: a model of 6,000 maps):
every statistic's p-values are uniform on fresh simulations of the model, and a map of clearly
other physics, a stretched-exponential time-translation-invariant decay, is flagged."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from gbsbi.bank import BankSpec, simulate_bank
    from gbsbi.inference.config import TrainConfig
    from gbsbi.inference.model import load_model
    from gbsbi.inference.pipeline import train_model
    from simulators.config import ExperimentConfig, Prior

    root = tmp_path_factory.mktemp("misspec-model")
    torch.set_num_threads(2)
    bank, fresh = root / "bank.h5", root / "fresh.h5"
    simulate_bank(bank, BankSpec(ExperimentConfig(), Prior(), 6000, 31, measurement="fast"),
                  workers=2)
    simulate_bank(fresh, BankSpec(ExperimentConfig(), Prior(), 300, 32, measurement="fast"))
    # a validation share of 0.2: 1,200 held-out maps, 480 of them the null (300 predictive)
    train_model(bank, root / "model", TrainConfig(epochs=25, validation_fraction=0.2),
                show_progress=False, log=lambda line: None)
    return load_model(root / "model"), fresh


def test_every_statistic_is_uniform_on_fresh_simulations(trained):
    """300 fresh simulations against one null of 300-480: each statistic's p-values are
    uniform up to the null's own sampling (its quantiles move by about 1/sqrt(m) ~ 0.05),
    below the KS distance that gives p = 0.001 at n = 300 (0.11); the combined test flags
    at most 9 % of them (0.05 nominal, binomial 3 sd 0.038)."""
    from gbsbi.inference.data import bank_inputs, bank_maps
    from gbsbi.inference.npe.predict import posterior_draws
    from gbsbi.validation.misspecification import TESTS, scan_tests

    model, fresh = trained
    data = bank_inputs(fresh, model.spec.inputs)
    C, temperature, age = bank_maps(fresh, np.arange(len(data.x)))
    tested = scan_tests(model, data.x, C, temperature,
                        posterior_draws(model, data.x, 40, 0), seed=0, age=age)
    assert set(tested.tests) == set(TESTS)
    for name, p in tested.tests.items():
        assert stats.kstest(p, "uniform").pvalue > 1e-3, name
    assert tested.flagged.mean() <= 0.09


def test_a_stretched_exponential_map_is_flagged(trained):
    """Clearly other physics: C = 1 + beta exp(-2 (Gamma tau)^0.3), time-translation
    invariant, measured at 0.5 photons per pixel per frame on 20,000 pixels."""
    from gbsbi.inference.inputs import network_inputs
    from gbsbi.inference.npe.predict import posterior_draws
    from gbsbi.validation.misspecification import scan_tests
    from simulators.config import ExperimentConfig, MeasurementConfig
    from simulators.measurement import measure

    model, _ = trained
    config = ExperimentConfig()
    tau = np.abs(config.t[:, None] - config.t[None, :])
    rng = np.random.default_rng(5)
    maps = np.stack([measure(np.exp(-(tau / 200.0) ** 0.3),
                             MeasurementConfig(nbar=0.5, n_pix=20_000, beta=0.2), rng).C
                     for _ in range(3)]).astype(np.float32)
    temperature = np.full(3, 400.0)
    x = network_inputs(maps, temperature, model.spec.inputs)
    tested = scan_tests(model, x, maps, temperature, posterior_draws(model, x, 40, 0), seed=0)
    assert tested.flagged.all(), tested.tests


def test_a_map_whose_contrast_drifts_is_flagged_by_its_trend(trained):
    """The model's own physics (one boundary, theta inside the prior) measured at 0.5 photons
    per pixel per frame on 20,000 pixels, with a contrast that grows by 60 % over the window
    (C - 1 -> g(t1) g(t2) (C - 1), g from 0.7 to 1.3: a drifting incoherent background). The
    map looks like the model at another contrast; its trend along the window does not, so
    ppc_trend flags each of 3 such maps by itself."""
    from gbsbi.inference.inputs import network_inputs
    from gbsbi.inference.npe.predict import posterior_draws
    from gbsbi.validation.misspecification import scan_tests
    from simulators.config import ExperimentConfig, MeasurementConfig
    from simulators.measurement import measure
    from simulators.polycrystal import sample_parts

    model, _ = trained
    config = ExperimentConfig()
    rng = np.random.default_rng(6)
    theta = np.tile([[2.5e-4, 0.3, 0.25]], (3, 1))
    temperature = np.full(3, 400.0)
    real, imag = sample_parts(theta, temperature, config, None, rng)
    g = 1 + 0.6 * (np.linspace(0, 1, config.n_frames) - 0.5)
    maps = np.stack([1 + np.outer(g, g) * (measure(real[k] + 1j * imag[k],
                                                   MeasurementConfig(nbar=0.5, n_pix=20_000,
                                                                     beta=0.2), rng).C - 1)
                     for k in range(3)]).astype(np.float32)
    x = network_inputs(maps, temperature, model.spec.inputs)
    tested = scan_tests(model, x, maps, temperature, posterior_draws(model, x, 40, 0), seed=0)
    assert (tested.tests["ppc_trend"] < tested.alpha).all(), tested.tests
    assert tested.flagged.all()
