"""Figure of one scan's posterior predictive check (:mod:`gbsbi.validation.ppc`)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gbsbi.plots import pyplot as _plt

if TYPE_CHECKING:
    from gbsbi.validation.ppc import ScanCheck


def ppc_plot(check: ScanCheck, t: np.ndarray, title: str, path: Path) -> Path:
    """Observed map, one replicate, residual z map; Phi against its predictive distribution;
    cuts C(t1, t1 + tau) with 5-95 % predictive bands."""
    with warnings.catch_warnings():  # dropped frames: all-NaN rows in every replicate
        warnings.simplefilter("ignore", RuntimeWarning)
        return _ppc_plot(check, t, title, path)


def _ppc_plot(check: ScanCheck, t: np.ndarray, title: str, path: Path) -> Path:
    plt = _plt()
    obs, reps = check.observed, check.replicates
    T = len(t)
    diag = np.eye(T, dtype=bool)
    shown = [np.where(diag, np.nan, obs), np.where(diag, np.nan, reps[0])]
    low, high = np.nanquantile(shown[0], [0.01, 0.99])
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(diag, np.nan, (obs - np.nanmean(reps, 0)) / np.nanstd(reps, 0))
    fig, axes = plt.subplots(2, 3, figsize=(14, 8), constrained_layout=True)
    extent = (t[0], t[-1], t[0], t[-1])
    for ax, image, label in zip(axes[0, :2], shown, ("observed", "one replicate"),
                                strict=True):
        im = ax.imshow(image, origin="lower", extent=extent, vmin=low, vmax=high)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("$t_1$ [s]")
        fig.colorbar(im, ax=ax, shrink=0.8, label="$C(t_1, t_2)$")
    axes[0, 0].set_ylabel("$t_2$ [s]")
    im = axes[0, 2].imshow(z, origin="lower", extent=extent, vmin=-4, vmax=4, cmap="RdBu_r")
    axes[0, 2].set_title("residual (observed - predictive mean) / predictive sd", fontsize=10)
    axes[0, 2].set_xlabel("$t_1$ [s]")
    fig.colorbar(im, ax=axes[0, 2], shrink=0.8, label="residual z (predictive sd)")
    numbers = check.numbers
    for ax, k, label, p in ((axes[1, 0], 1, r"noise-corrected $\Phi$", "p_phi_corrected"),
                            (axes[1, 1], 0, r"plain $\Phi$", "p_phi")):
        values = check.phi_rep[:, k]
        values = values[np.isfinite(values)]
        if len(values):
            ax.hist(values, bins=30, color="0.6", label="predictive")
        if np.isfinite(check.phi_obs[k]):
            ax.axvline(check.phi_obs[k], color="C3", lw=2, label="observed")
        ax.set_xlabel(label)
        ax.set_ylabel("replicates")
        ax.set_title(f"{label}: predictive p = {numbers[p]:.2f}", fontsize=10)
        ax.legend(fontsize=8)
    ax = axes[1, 2]
    for j, s in enumerate(check.starts):
        lag = np.arange(1, T - s)
        band = np.nanquantile(reps[:, s, s + lag], [0.05, 0.95], axis=0)
        tau = t[lag] - t[0]
        ax.fill_between(tau, band[0], band[1], color=f"C{j}", alpha=0.25)
        ax.plot(tau, obs[s, s + lag], color=f"C{j}", lw=1, label=f"$t_1$ = {t[s]:.0f} s")
    ax.set_xscale("log")
    ax.set_xlabel(r"$\tau$ [s]")
    ax.set_ylabel(r"$C(t_1, t_1 + \tau)$")
    ax.set_title(f"cuts with 5-95 % bands ({numbers['cuts_inside_90']:.0%} inside)",
                 fontsize=10)
    ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
