"""Figures of simulation banks: quartile maps (paper Fig. 3a), Phi over parameter pairs
(Fig. 3c) and cuts C(t1, t1 + tau) (Fig. 2b).

Banks simulated as measured carry photon noise, which biases the plain Phi upward on every map
and puts the Poisson self-term on the diagonal: their figures use the noise-corrected Phi
(``phi_corrected``) and every colour scale leaves the diagonal out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gbsbi.errors import GbsbiError
from gbsbi.io.mapsfile import open_maps_file
from gbsbi.plots import pyplot

if TYPE_CHECKING:  # matplotlib loads when a figure is drawn, not for `gbsbi --help`
    import matplotlib.pyplot as plt

LABELS = {"D": "D [nm$^2$/s]", "sigma": r"$\sigma$ [J/m$^2$]", "c": "c"}
NAMES = ("D", "sigma", "c")
#: The files :func:`plot_bank` writes.
FIGURES = ("quartile_maps.png", "phi_pairs.png", "cuts.png")


def load_bank_summary(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """theta (n, 3), temperature (n,), phi (n,) and t (T,) of a bank, without its maps.

    ``phi`` is the noise-corrected Phi where the bank has it (measured banks), else the plain
    one; ``phi_label`` says which.
    """
    with open_maps_file(path) as reader:
        missing = [k for k in ("theta", "phi") if not reader.has(k)]
        if missing:
            raise GbsbiError(f"{path}: not a simulation bank (missing {', '.join(missing)})")
        corrected = reader.has("phi_corrected")
        return {
            "theta": reader.values("theta", (3,)),
            "temperature": reader.values("temperature", finite=True, positive=True),
            "t": reader.values("t", finite=True),
            "phi": reader.values("phi_corrected" if corrected else "phi"),
            "phi_label": r"$\Phi_{corr}$" if corrected else r"$\Phi$",
        }


def quartile_indices(phis: np.ndarray) -> np.ndarray:
    """Index of the map whose Phi is nearest the middle (12.5, 37.5, 62.5, 87.5 %) of each
    Phi quartile."""
    if not np.isfinite(phis).any():
        raise GbsbiError("no map has a finite Phi: nothing to sort into quartiles")
    targets = np.nanpercentile(phis, [12.5, 37.5, 62.5, 87.5])
    return np.array([np.nanargmin(np.abs(phis - target)) for target in targets])


def load_quartile_maps(path: str | os.PathLike, s: dict[str, np.ndarray]) -> None:
    """Add ``index`` (4,) and ``maps`` (4, T, T), one map per Phi quartile, to the summary."""
    try:
        s["index"] = quartile_indices(s["phi"])
    except GbsbiError as err:
        raise GbsbiError(f"{path}: {err}") from None
    with open_maps_file(path) as reader:
        s["maps"] = np.stack([reader.maps(int(i)) for i in s["index"]])


def colour_range(C: np.ndarray) -> tuple[float, float]:
    """Colour limits of a map from its off-diagonal entries (the diagonal carries the Poisson
    self-term): their 0.5 and 99.5 percentiles, so a few noisy pixels do not set the scale."""
    T = C.shape[-1]
    off = C[~np.eye(T, dtype=bool)]
    off = off[np.isfinite(off)]
    if off.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(off, [0.5, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1e-6)


def _title(s: dict[str, np.ndarray], q: int, i: int) -> str:
    D, sigma, c = s["theta"][i]
    return (f"Q{q + 1}: {s['phi_label']} = {s['phi'][i]:.3f}\n"
            f"D = {D:.2g} nm$^2$/s, $\\sigma$ = {sigma:.2g} J/m$^2$\n"
            f"c = {c:.2f}, T = {s['temperature'][i]:.0f} K")


def plot_quartile_maps(s: dict[str, np.ndarray], out: Path) -> Path:
    """One map per Phi quartile, as in the paper's Fig. 3a (``s`` from
    :func:`load_bank_summary` and :func:`load_quartile_maps`)."""
    plt = pyplot()
    index, maps, t = s["index"], s["maps"], s["t"]
    # four square maps, a three-line title and a colour bar below: no empty strip above
    fig, axes = plt.subplots(1, 4, figsize=(15, 5.0), layout="constrained")
    for q, (ax, i, m) in enumerate(zip(axes, index, maps, strict=True)):
        vmin, vmax = colour_range(m)
        im = ax.imshow(m, origin="lower", extent=(t[0], t[-1], t[0], t[-1]), cmap="viridis",
                       vmin=vmin, vmax=vmax)
        ax.set_title(_title(s, q, i), fontsize=9)
        ax.set_xlabel("$t_1$ [s]")
        fig.colorbar(im, ax=ax, shrink=0.8, label="$C(t_1, t_2)$ (diagonal off scale)",
                     location="bottom", pad=0.02)
    axes[0].set_ylabel("$t_2$ [s]")
    return _save(fig, out / "quartile_maps.png")


def plot_phi_pairs(s: dict[str, np.ndarray], out: Path, bins: int = 16) -> Path:
    """Mean Phi over each pair of parameters, as in the paper's Fig. 3c."""
    from scipy.stats import binned_statistic_2d

    plt = pyplot()

    finite = np.isfinite(s["phi"])
    theta, phis = s["theta"][finite], s["phi"][finite]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), layout="constrained")
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
    fig.colorbar(mesh, ax=axes, label=f"mean {s['phi_label']}")
    dropped = int((~finite).sum())
    note = f", {dropped} with undefined {s['phi_label']} left out" if dropped else ""
    fig.suptitle(f"non-equilibrium measure over the prior ({len(phis)} maps{note})")
    return _save(fig, out / "phi_pairs.png")


def plot_cuts(s: dict[str, np.ndarray], out: Path, n_cuts: int = 5) -> Path:
    """Cuts C(t1, t1 + tau) for several t1 of each quartile map, as in the paper's Fig. 2b.

    A time-translation-invariant map gives the same curve for every t1.
    """
    plt = pyplot()
    index, t = s["index"], s["t"]
    T = len(t)
    starts = np.linspace(0, T // 2, n_cuts).astype(int)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.8), sharey=True, layout="constrained")
    for q, (ax, i, m) in enumerate(zip(axes, index, s["maps"], strict=True)):
        for k, start in enumerate(starts):
            lag = np.arange(1, T - start)
            ax.plot(t[lag], m[start, start + lag], color=plt.cm.plasma(k / n_cuts),
                    label=f"$t_1$ = {t[start]:.0f} s")
        ax.set_xscale("log")
        ax.set_title(f"Q{q + 1}: {s['phi_label']} = {s['phi'][i]:.3f}", fontsize=9)
        ax.set_xlabel(r"$\tau$ [s]")
    axes[0].set_ylabel(r"$C(t_1, t_1 + \tau)$")
    axes[-1].legend(fontsize=7)
    return _save(fig, out / "cuts.png")


def plot_bank(path: str | os.PathLike, out: str | os.PathLike) -> list[Path]:
    """All bank figures (:data:`FIGURES`) into the folder ``out`` (created if needed)."""
    from gbsbi.io.atomic import ensure_folder

    out = ensure_folder(out)
    s = load_bank_summary(path)
    load_quartile_maps(path, s)
    return [plot_quartile_maps(s, out), plot_phi_pairs(s, out), plot_cuts(s, out)]


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return path
