"""The sbi adapter: the prior as a torch distribution sbi accepts, and the simulator callable."""

import numpy as np
import pytest
from scipy import stats

torch = pytest.importorskip("torch")
from sbi.inference import simulate_for_sbi  # noqa: E402
from sbi.utils.user_input_checks import process_prior  # noqa: E402

from gbsbi.inference.sbi_adapter import Simulator, split_x, torch_prior  # noqa: E402
from gbsbi.summaries.phi import phi  # noqa: E402
from simulators.config import ExperimentConfig, Prior  # noqa: E402


def test_prior_is_accepted_by_sbi_and_has_the_right_marginals():
    prior = torch_prior(Prior())
    process_prior(prior)
    samples = prior.sample((4000,)).numpy()
    assert samples.shape == (4000, 3)
    spec = Prior().parameters
    # KS at n = 4000 has a 1% critical value of 0.026; the uniform (linear) and log-uniform
    # (log) marginals must pass it.
    assert stats.kstest(samples[:, 0], stats.uniform(spec[0].low, spec[0].high).cdf).pvalue > 0.01
    assert stats.kstest(np.log(samples[:, 1]),
                        stats.uniform(np.log(0.03), np.log(100)).cdf).pvalue > 0.01
    assert stats.kstest(samples[:, 2], stats.uniform(0, 0.5).cdf).pvalue > 0.01


def test_prior_log_prob_inside_and_outside():
    prior = torch_prior(Prior())
    inside = torch.tensor([[1e-4, 0.3, 0.2]])
    expected = -np.log(5e-4) - np.log(0.3 * np.log(100)) - np.log(0.5)
    assert np.isclose(prior.log_prob(inside).item(), expected, rtol=1e-5)
    for outside in ([1e-3, 0.3, 0.2], [1e-4, 5.0, 0.2], [1e-4, 0.3, 0.7]):
        assert prior.log_prob(torch.tensor([outside])).item() == -np.inf


def test_simulator_works_with_sbi_simulation_utilities():
    config = ExperimentConfig(n_frames=16)
    prior = torch_prior(Prior())
    theta, x = simulate_for_sbi(Simulator(config, Prior(), seed=1), prior, 40,
                                simulation_batch_size=16, show_progress_bar=False)
    assert theta.shape == (40, 3) and x.shape == (40, 16 * 16 + 2)
    maps, phis, temperature = split_x(x, 16)
    np.testing.assert_allclose(phis.numpy(), phi(maps.numpy()), atol=1e-6)
    assert ((temperature >= 300) & (temperature <= 500)).all()


def test_fixed_temperature_and_reproducibility():
    config = ExperimentConfig(n_frames=16)
    theta = torch.tensor([[1e-4, 0.3, 0.2], [0.0, 1.0, 0.5]])
    a = Simulator(config, Prior(), temperature=350.0, seed=3)(theta)
    b = Simulator(config, Prior(), temperature=350.0, seed=3)(theta)
    assert torch.equal(a, b)
    assert torch.all(split_x(a, 16)[2] == 350.0)
