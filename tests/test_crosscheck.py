"""emcee as the cross-check runs it, on a known 2-D Gaussian likelihood: the mean and the
covariance come back within stated tolerances, and ArviZ's R-hat and ESS are sound."""

import numpy as np
import pytest

pytest.importorskip("torch")
from gbsbi.validation.crosscheck import EmceeConfig, run_emcee  # noqa: E402

MEAN = np.array([0.4, 0.6])
COV = np.array([[0.010, 0.006], [0.006, 0.008]])  # correlation 0.67, well inside the cube


def test_emcee_recovers_a_known_gaussian():
    precision = np.linalg.inv(COV)

    def log_prob(u: np.ndarray) -> np.ndarray:
        d = u - MEAN
        return -0.5 * np.einsum("ni,ij,nj->n", d, precision, d)

    rng = np.random.default_rng(0)
    result = run_emcee(log_prob, MEAN + 0.05 * rng.standard_normal((32, 2)),
                       EmceeConfig(check_every=200, max_steps=20_000), seed=0)
    draws = result.samples.reshape(-1, 2)
    assert result.converged and result.rhat.max() < 1.01 and result.ess_bulk.min() > 400
    # With ESS > 400 the mean's Monte Carlo error is below sd / 20 (0.005 for sd 0.1); 3.5
    # such errors is 0.018. The covariance's relative error is about sqrt(2 / ESS) = 7 %;
    # 25 % allows 3.5 of those.
    np.testing.assert_allclose(draws.mean(0), MEAN, atol=0.018)
    np.testing.assert_allclose(np.cov(draws.T), COV, rtol=0.25, atol=0.0)
    assert result.burn >= 2 * result.tau.max() and result.thin >= 1


def test_numpy_surrogate_is_the_torch_surrogate_and_the_likelihood_its_gaussian():
    import torch

    from gbsbi.inference.surrogate import PhiSurrogate, gaussian_nll
    from gbsbi.inference.surrogate import numpy_forward as surrogate_numpy
    from gbsbi.validation.crosscheck import phi_log_likelihood

    torch.manual_seed(0)
    surrogate = PhiSurrogate(16).eval()
    u, t = torch.rand(50, 3), 2 * torch.rand(50) - 1
    with torch.no_grad():
        mu, sd = surrogate(u, t)
    mu_np, sd_np = surrogate_numpy(surrogate)(u.double().numpy(), t.double().numpy())
    np.testing.assert_allclose(mu_np, mu.numpy(), rtol=1e-5)
    np.testing.assert_allclose(sd_np, sd.numpy(), rtol=1e-5)
    log_prob = phi_log_likelihood(surrogate_numpy(surrogate), 0.3, 0.25)
    with torch.no_grad():
        expected = -gaussian_nll(*surrogate(u, torch.full((50,), 0.25)), torch.full((50,), 0.3))
    np.testing.assert_allclose(log_prob(u.double().numpy()), expected.numpy(), rtol=1e-5)
    assert np.isneginf(log_prob(np.array([[0.5, 1.2, 0.5]])))[0]
