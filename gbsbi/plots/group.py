"""Figures of group posteriors (``gbsbi group``): the Arrhenius plot and a corner plot of the
group's parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gbsbi.plots import pyplot, save


def arrhenius_plot(data, group: str, model, per_scan: np.ndarray,  # noqa: ANN001
                   path: Path, scans: np.ndarray) -> Path:
    """ln D against 1000 / T: each scan's own posterior (median and 90 % interval, from
    ``per_scan``, draws of D of shape (draws, n)), the group's law (median and 90 % band over
    a temperature grid, or the shared D), and the true values where known.

    Args:
        data: the group posteriors' InferenceData.
        group: the group's name.
        model: its :class:`gbsbi.group.law.GroupModel`.
        per_scan: draws of each scan's D from its own posterior, shape (draws, n).
        path: the PNG to write.
        scans: the indices of the n scans joined (a scan of the group left out, e.g. a
            flagged one, is not among them).
    """
    plt = pyplot()
    const = data.constant_data
    members = np.zeros(const.sizes["scan"], dtype=bool)
    members[np.asarray(scans)] = True
    temperature = const["temperature"].values[members]
    fig, ax = plt.subplots(figsize=(6, 4.4), constrained_layout=True)
    x = 1000 / temperature
    low, mid, high = np.quantile(per_scan, [0.05, 0.5, 0.95], axis=0)
    ax.errorbar(x, mid, yerr=[mid - low, high - mid], fmt="o", ms=4, capsize=2, color="C0",
                label="each scan's own posterior (median, 90 %)")
    grid = np.linspace(temperature.min() - 10, temperature.max() + 10, 60)
    post = data.posterior
    if model.law == "arrhenius":
        d_ref = post["D_ref"].sel(group=group).values.ravel()
        ea = post["Ea"].sel(group=group).values.ravel()
        curve = type(model)(grid, "none", (), model.prior, model.group_prior).arrhenius(d_ref, ea)
        label = "Arrhenius law (median, 90 % band)"
    else:
        d = post["D"].sel(group=group).values.ravel() if "D" in post else \
            post["D_scan"].values[..., members].reshape(-1, members.sum()).mean(axis=1)
        curve = np.repeat(d[:, None], len(grid), axis=1)
        label = "shared D (median, 90 % band)" if "D" in post else "mean of the scans' D"
    band = np.quantile(curve, [0.05, 0.5, 0.95], axis=0)
    ax.fill_between(1000 / grid, band[0], band[2], color="C1", alpha=0.3, label=label)
    ax.plot(1000 / grid, band[1], color="C1")
    if "D_true" in const:
        ax.plot(x, const["D_true"].values[members], "x", color="C3", ms=8, mew=2,
                label="true D")
    ax.set_yscale("log")
    ax.set_xlabel("1000 / T [1/K]")
    ax.set_ylabel("D [nm$^2$/s]")
    ax.set_title(f"group {group}: {members.sum()} scans", fontsize=10)
    ax.legend(fontsize=7)
    return save(fig, path)


def group_corner(data, group: str, path: Path) -> Path:  # noqa: ANN001
    """Histograms and pairs of the group-level parameters (sigma logarithmic)."""
    plt = pyplot()
    post = data.posterior
    names = [n for n in post.data_vars if "group" in post[n].dims]
    values = [post[n].sel(group=group).values.ravel() for n in names]
    values = [np.log10(v) if n == "sigma" else v for n, v in zip(names, values, strict=True)]
    labels = [f"log10 {n}" if n == "sigma" else f"{n} [{post[n].attrs.get('units', '')}]"
              for n in names]
    truth = {}
    if "D_true" in data.constant_data:
        members = np.asarray(data.constant_data["scan_group"].values, dtype=str) == group
        for n in ("sigma", "c"):
            true = data.constant_data[f"{n}_true"].values[members]
            if n in names and np.allclose(true, true[0]):
                truth[n] = np.log10(true[0]) if n == "sigma" else true[0]
    k = max(1, len(names))
    fig, axes = plt.subplots(k, k, figsize=(2.2 * k + 1, 2.2 * k + 1), constrained_layout=True,
                             squeeze=False)
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if j > i or not names:
                ax.set_visible(False)
                continue
            if i == j:
                ax.hist(values[i], bins=40, color="C0", alpha=0.6, density=True)
                for q in np.quantile(values[i], [0.05, 0.95]):
                    ax.axvline(q, color="C0", ls="--", lw=1)
                if names[i] in truth:
                    ax.axvline(truth[names[i]], color="C3")
                ax.set_yticks([])
            else:
                ax.hist2d(values[j], values[i], bins=40, cmap="Blues")
            if i == k - 1:
                ax.set_xlabel(labels[j], fontsize=8)
            if j == 0 and i > 0:
                ax.set_ylabel(labels[i], fontsize=8)
    fig.suptitle(f"group {group}: joint posterior (dashed: 90 % interval; red: true value)",
                 fontsize=9)
    return save(fig, path)
