"""Figures of simulation banks: quartile maps (paper Fig. 3a), Phi over parameter pairs
(Fig. 3c) and cuts C(t1, t1 + tau) (Fig. 2b)."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import binned_statistic_2d  # noqa: E402

from gbsbi.errors import GbsbiError
from gbsbi.io.atomic import ensure_folder  # noqa: E402

LABELS = {"D": "D [nm$^2$/s]", "sigma": r"$\sigma$ [J/m$^2$]", "c": "c"}
NAMES = ("D", "sigma", "c")


def load_bank_summary(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """theta (n, 3), temperature (n,), phi (n,) and t (T,) of a bank, without its maps."""
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("C", "theta", "phi", "t", "temperature") if k not in f]
            if missing:
                raise GbsbiError(f"{path}: not a simulation bank (missing {', '.join(missing)})")
            return {k: f[k][()] for k in ("theta", "temperature", "phi", "t")}
    except OSError as err:
        raise GbsbiError(f"{path}: not a readable HDF5 file ({err})") from None


def quartile_indices(phis: np.ndarray) -> np.ndarray:
    """Index of the map whose Phi is nearest the middle (12.5, 37.5, 62.5, 87.5 %) of each
    Phi quartile."""
    targets = np.nanpercentile(phis, [12.5, 37.5, 62.5, 87.5])
    return np.array([np.nanargmin(np.abs(phis - target)) for target in targets])


def load_quartile_maps(path: str | os.PathLike, s: dict[str, np.ndarray]) -> None:
    """Add ``index`` (4,) and ``maps`` (4, T, T), one map per Phi quartile, to the summary."""
    s["index"] = quartile_indices(s["phi"])
    with h5py.File(path, "r") as f:
        s["maps"] = np.stack([f["C"][i] for i in s["index"]])


def plot_quartile_maps(s: dict[str, np.ndarray], out: Path) -> Path:
    """One map per Phi quartile, as in the paper's Fig. 3a (``s`` from
    :func:`load_bank_summary` and :func:`load_quartile_maps`)."""
    index, maps, t = s["index"], s["maps"], s["t"]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.8), constrained_layout=True)
    for q, (ax, i, m) in enumerate(zip(axes, index, maps, strict=True)):
        im = ax.imshow(m, origin="lower", extent=(t[0], t[-1], t[0], t[-1]), cmap="viridis")
        D, sigma, c = s["theta"][i]
        ax.set_title(
            f"Q{q + 1}: $\\Phi$ = {s['phi'][i]:.3f}\nD={D:.2g}, $\\sigma$={sigma:.2g}, "
            f"c={c:.2f}, T={s['temperature'][i]:.0f} K", fontsize=9,
        )
        ax.set_xlabel("$t_1$ [s]")
        fig.colorbar(im, ax=ax, shrink=0.8)
    axes[0].set_ylabel("$t_2$ [s]")
    return _save(fig, out / "quartile_maps.png")


def plot_phi_pairs(s: dict[str, np.ndarray], out: Path, bins: int = 16) -> Path:
    """Mean Phi over each pair of parameters, as in the paper's Fig. 3c."""
    theta, phis = s["theta"], s["phi"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    for ax, (a, b) in zip(axes, ((0, 1), (0, 2), (1, 2)), strict=True):
        x, y = theta[:, a], theta[:, b]
        xs = np.log10(x) if NAMES[a] == "sigma" else x
        ys = np.log10(y) if NAMES[b] == "sigma" else y
        stat = binned_statistic_2d(xs, ys, phis, statistic="mean", bins=bins)
        xe = 10**stat.x_edge if NAMES[a] == "sigma" else stat.x_edge
        ye = 10**stat.y_edge if NAMES[b] == "sigma" else stat.y_edge
        mesh = ax.pcolormesh(xe, ye, stat.statistic.T, cmap="magma", vmin=0, vmax=1)
        if NAMES[a] == "sigma":
            ax.set_xscale("log")
        if NAMES[b] == "sigma":
            ax.set_yscale("log")
        ax.set_xlabel(LABELS[NAMES[a]])
        ax.set_ylabel(LABELS[NAMES[b]])
    fig.colorbar(mesh, ax=axes, label=r"mean $\Phi$")
    fig.suptitle(f"non-equilibrium measure over the prior ({len(phis)} maps)")
    return _save(fig, out / "phi_pairs.png")


def plot_cuts(s: dict[str, np.ndarray], out: Path, n_cuts: int = 5) -> Path:
    """Cuts C(t1, t1 + tau) for several t1 of each quartile map, as in the paper's Fig. 2b.

    A time-translation-invariant map gives the same curve for every t1.
    """
    index, t = s["index"], s["t"]
    T = len(t)
    starts = np.linspace(0, T // 2, n_cuts).astype(int)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.5), sharey=True, constrained_layout=True)
    for q, (ax, i, m) in enumerate(zip(axes, index, s["maps"], strict=True)):
        for k, start in enumerate(starts):
            lag = np.arange(1, T - start)
            ax.plot(t[lag], m[start, start + lag], color=plt.cm.plasma(k / n_cuts),
                    label=f"$t_1$ = {t[start]:.0f} s")
        ax.set_xscale("log")
        ax.set_title(f"Q{q + 1}: $\\Phi$ = {s['phi'][i]:.3f}", fontsize=9)
        ax.set_xlabel(r"$\tau$ [s]")
    axes[0].set_ylabel(r"$C(t_1, t_1 + \tau)$")
    axes[-1].legend(fontsize=7)
    return _save(fig, out / "cuts.png")


def plot_bank(path: str | os.PathLike, out: str | os.PathLike) -> list[Path]:
    """All bank figures into the folder ``out`` (created if needed)."""
    out = ensure_folder(out)
    s = load_bank_summary(path)
    load_quartile_maps(path, s)
    return [plot_quartile_maps(s, out), plot_phi_pairs(s, out), plot_cuts(s, out)]


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
