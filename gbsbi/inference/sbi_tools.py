"""sbi's validation functions with NumPy in and out: SBC and TARP over draws already made,
the C2ST between two sets of draws, and the MMD test of a set of feature vectors.

They keep torch inside :mod:`gbsbi.inference`; :mod:`gbsbi.validation` calls them with arrays.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor


class Drawn:
    """sbi's ``sample_batched`` over draws already made, for ``run_sbc`` and ``run_tarp``.

    Args:
        draws: u, shape (draws, n, 3), for the n inputs ``x`` it will be asked about.
        x: those inputs, shape (n, D).
    """

    def __init__(self, draws: Tensor, x: Tensor) -> None:
        self.draws, self.x = draws, x

    def sample_batched(self, sample_shape: tuple[int, ...], x: Tensor,
                       show_progress_bars: bool = False) -> Tensor:
        if tuple(sample_shape) != (len(self.draws),) or not torch.equal(x, self.x):
            raise ValueError("Drawn serves only the draws and inputs it was made with")
        return self.draws


def sbc_and_tarp(draws: np.ndarray, u: np.ndarray, x: np.ndarray,
                 seed: int = 0) -> tuple[np.ndarray, dict, dict]:
    """SBC ranks with sbi's ``run_sbc``/``check_sbc`` and TARP with ``run_tarp``/``check_tarp``,
    all on the same draws.

    Args:
        draws: posterior draws u, shape (draws, n, 3).
        u: the true u of each simulation, shape (n, 3).
        x: the simulations' inputs, shape (n, D).
        seed: seeds torch (TARP's reference points, sbi's C2ST of the ranks).

    Returns:
        The ranks (draws below the truth), shape (n, 3); ``check_sbc``'s figures as lists;
        TARP's ``ecp``, ``alpha``, ``atc`` and ``ks_pvalue``.
    """
    from sbi.diagnostics import check_sbc, check_tarp, run_sbc, run_tarp

    torch.manual_seed(seed)
    samples = torch.as_tensor(draws, dtype=torch.float32)
    x_t = torch.as_tensor(x, dtype=torch.float32)
    u_t = torch.as_tensor(u, dtype=torch.float32)
    posterior = Drawn(samples, x_t)
    n_draws = len(samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sbi's "use 100s of samples" notes
        ranks, dap = run_sbc(u_t, x_t, posterior, num_posterior_samples=n_draws,
                             show_progress_bar=False)
        sbc = check_sbc(ranks, torch.rand(len(u_t), 3), dap, num_posterior_samples=n_draws)
        # sbi bins the credibility values in n // 10 bins: at least 2 for a small test set
        ecp, alpha = run_tarp(u_t, x_t, posterior, num_posterior_samples=n_draws,
                              show_progress_bar=False, num_bins=max(2, len(u_t) // 10))
        atc, ks = check_tarp(ecp, alpha)
    tarp = {"ecp": ecp.tolist(), "alpha": alpha.tolist(), "atc": float(atc),
            "ks_pvalue": float(ks)}
    return ranks.numpy(), {k: v.tolist() for k, v in sbc.items()}, tarp


def c2st_score(a: np.ndarray, b: np.ndarray, seed: int = 0) -> float:
    """sbi's C2ST accuracy between two sets of draws (0.5: indistinguishable), on equal
    numbers of each drawn at random."""
    from sbi.utils.metrics import c2st

    n = min(len(a), len(b))
    rng = np.random.default_rng(seed)
    pick_a, pick_b = rng.permutation(len(a))[:n], rng.permutation(len(b))[:n]
    return float(c2st(torch.as_tensor(a[pick_a], dtype=torch.float32),
                      torch.as_tensor(b[pick_b], dtype=torch.float32), seed=seed))


def mmd_test(f: np.ndarray, reference: np.ndarray, n_shuffle: int = 1000,
             seed: int = 0) -> dict:
    """sbi's ``calc_misspecification_mmd`` of a set of feature vectors f, shape (m, F),
    against reference features, shape (r, F), r > m.

    Returns:
        ``p_value``, ``mmd`` and the 5 %, 50 % and 95 % quantiles of the permutation null.
    """
    from sbi.diagnostics import calc_misspecification_mmd

    f_t = torch.as_tensor(f, dtype=torch.float32)
    ref = torch.as_tensor(reference, dtype=torch.float32)
    torch.manual_seed(seed)
    p, (null, mmd) = calc_misspecification_mmd(f_t, ref, mode="x_space", n_shuffle=n_shuffle,
                                               max_samples=len(ref))
    q = torch.quantile(null, torch.tensor([0.05, 0.5, 0.95])).tolist()
    return {"p_value": float(p), "mmd": float(mmd), "null_q05_q50_q95": q}
