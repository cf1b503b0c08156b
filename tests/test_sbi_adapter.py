"""The sbi adapter: the prior on the unit cube under BoxUniform, and a simulator whose parallel
batches draw different random numbers."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from sbi.inference import simulate_for_sbi  # noqa: E402
from sbi.utils.user_input_checks import process_prior  # noqa: E402

from gbsbi.inference.sbi_adapter import Simulator, split_x, torch_prior  # noqa: E402
from gbsbi.summaries.phi import phi  # noqa: E402
from simulators.config import ExperimentConfig, Prior  # noqa: E402


def test_prior_is_the_unit_cube_and_accepted_by_sbi():
    prior = torch_prior(Prior())
    process_prior(prior)
    samples = prior.sample((4000,))
    assert samples.shape == (4000, 3)
    assert samples.min() >= 0 and samples.max() <= 1
    assert torch.all(prior.log_prob(torch.tensor([[0.5, 0.5, 0.5]])) == 0)


def test_prior_support_is_exact_in_physical_units():
    """sigma = 10 J/m^2 lies outside the prior (0.03 to 3): u > 1, so -inf; the old
    transformed log-uniform had support (0, inf) and took it as inside."""
    spec = Prior()
    prior = torch_prior(spec)
    u = torch.as_tensor(spec.to_unit(np.array([[1e-4, 10.0, 0.2], [1e-4, 0.3, 0.2],
                                               [1e-4, 0.01, 0.2], [1e-3, 0.3, 0.2]])))
    log_prob = prior.log_prob(u.float())
    assert log_prob[1] == 0
    assert torch.all(torch.isinf(log_prob[[0, 2, 3]]))


def test_simulator_maps_u_to_the_physical_prior():
    spec = Prior()
    u = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5]])
    theta = spec.from_unit(u)
    np.testing.assert_allclose(theta[0], [0.0, 0.03, 0.0])
    np.testing.assert_allclose(theta[1], [5e-4, 3.0, 0.5])
    np.testing.assert_allclose(theta[2], [2.5e-4, np.sqrt(0.03 * 3.0), 0.25])
    np.testing.assert_allclose(spec.to_unit(theta), u, atol=1e-12)


def test_simulator_works_with_sbi_simulation_utilities():
    config = ExperimentConfig(n_frames=16)
    prior = torch_prior(Prior())
    theta, x = simulate_for_sbi(Simulator(config, Prior(), seed=1), prior, 40,
                                simulation_batch_size=16, show_progress_bar=False, seed=0)
    assert theta.shape == (40, 3) and x.shape == (40, 16 * 16 + 2)
    maps, phis, temperature = split_x(x, 16)
    np.testing.assert_allclose(phis.numpy(), phi(maps.numpy()), atol=1e-6)
    assert ((temperature >= 300) & (temperature <= 500)).all()


class _Point:
    """A 'proposal' that always proposes the same u: any difference between simulations is
    the simulator's randomness."""

    def sample(self, shape: tuple) -> torch.Tensor:
        return torch.tensor([0.4, 0.8, 0.9]).expand(*shape, 3).clone()


@pytest.mark.parametrize("workers", [1, 2])
def test_batches_draw_different_random_numbers(workers):
    """With one theta everywhere, every map must still be its own boundary realisation: the
    bug was that joblib copies of the simulator replayed the same stream in every batch."""
    config = ExperimentConfig(n_frames=16)
    sim = Simulator(config, Prior(), temperature=400.0, seed=2)
    _, x = simulate_for_sbi(sim, _Point(), 8, num_workers=workers, simulation_batch_size=2,
                            show_progress_bar=False, seed=5)
    maps = x[:, :256].numpy()
    distinct = {m.tobytes() for m in maps}
    assert len(distinct) == 8


def test_simulation_is_reproducible_from_the_seed():
    config = ExperimentConfig(n_frames=16)
    sim = Simulator(config, Prior(), seed=3, measurement="fast")
    prior = torch_prior(Prior())
    runs = [simulate_for_sbi(sim, prior, 6, num_workers=2, simulation_batch_size=3,
                             show_progress_bar=False, seed=7) for _ in range(2)]
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    other = simulate_for_sbi(sim, prior, 6, num_workers=2, simulation_batch_size=3,
                             show_progress_bar=False, seed=8)
    assert not torch.equal(runs[0][1], other[1])


def test_fixed_temperature():
    config = ExperimentConfig(n_frames=16)
    u = torch.tensor([[0.2, 0.3, 0.4], [0.0, 0.5, 1.0]])
    x = Simulator(config, Prior(), temperature=350.0, seed=3)(u)
    assert torch.all(split_x(x, 16)[2] == 350.0)
