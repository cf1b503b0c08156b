"""Posterior files: ArviZ InferenceData in NetCDF, and the per-scan CSV beside it (SPEC 6).

The NetCDF file has the groups

* ``posterior``: D [nm^2/s], sigma [J/m^2], c [1], dims (chain, draw, scan), attribute
  ``units`` on each; the coordinate ``scan`` holds the maps file's scan names;
* ``constant_data``: ``temperature`` [K], ``q`` [nm^-1], ``group`` where the maps file has
  groups, and ``D_true``, ``sigma_true``, ``c_true`` where it knows theta (synthetic data);
* ``observed_data``: ``phi`` and ``phi_corrected`` of each map;

and every group's attributes, and the file's root attributes, name the model (``model_hash``,
``model``), the maps file (``maps_hash``, ``maps``) and the draws' ``seed``. The draws are
independent, so the split into chains is only for ArviZ's diagnostics (R-hat near 1 by
construction). ``arviz.from_netcdf`` reads the file; ``arviz.summary`` works on it.

The CSV has one row per scan: scan, group, T, and for D, sigma and c the posterior mean, sd
and 5 % and 95 % quantiles.
"""

from __future__ import annotations

import csv
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gbsbi.errors import GbsbiError
from gbsbi.io.atomic import atomic_path

NAMES = ("D", "sigma", "c")
UNITS = {"D": "nm^2/s", "sigma": "J/m^2", "c": "1"}
QUANTILES = (0.05, 0.95)


def _arviz():  # noqa: ANN202 - arviz prints a FutureWarning on import
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


@dataclass(frozen=True)
class PosteriorDraws:
    """Posterior draws for a set of scans, with what they are conditioned on.

    Attributes:
        theta: draws (D, sigma, c), shape (chains, draws, scans, 3).
        scan: scan names, shape (scans,).
        temperature: K, shape (scans,).
        q: nm^-1, shape (scans,).
        phi: plain Phi, shape (scans,).
        phi_corrected: noise-corrected Phi, shape (scans,).
        group: groups, shape (scans,), or None.
        truth: true theta, shape (scans, 3), or None.
    """

    theta: np.ndarray
    scan: np.ndarray
    temperature: np.ndarray
    q: np.ndarray
    phi: np.ndarray
    phi_corrected: np.ndarray
    group: np.ndarray | None = None
    truth: np.ndarray | None = None


def unique_names(names: np.ndarray) -> np.ndarray:
    """Scan names made unique by a suffix ``#2``, ``#3`` ... where they repeat."""
    seen: dict[str, int] = {}
    out = []
    for name in map(str, names):
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return np.array(out)


def to_inference_data(draws: PosteriorDraws, attrs: dict):  # noqa: ANN201 - arviz type
    """The InferenceData of the module docstring."""
    az = _arviz()
    dims = {name: ["scan"] for name in NAMES}
    constant = {"temperature": draws.temperature, "q": draws.q}
    if draws.group is not None:
        constant["group"] = np.asarray(draws.group, dtype=str)
    if draws.truth is not None:
        constant.update({f"{n}_true": draws.truth[:, k] for k, n in enumerate(NAMES)})
    observed = {"phi": draws.phi, "phi_corrected": draws.phi_corrected}
    data = az.from_dict(
        posterior={n: draws.theta[..., k] for k, n in enumerate(NAMES)},
        constant_data=constant, observed_data=observed,
        coords={"scan": unique_names(draws.scan)},
        dims={**dims, **{k: ["scan"] for k in (*constant, *observed)}},
    )
    for group in data.groups():
        getattr(data, group).attrs.update(attrs)
    for name in NAMES:
        data.posterior[name].attrs["units"] = UNITS[name]
        if draws.truth is not None:
            data.constant_data[f"{name}_true"].attrs["units"] = UNITS[name]
    data.constant_data["temperature"].attrs["units"] = "K"
    data.constant_data["q"].attrs["units"] = "nm^-1"
    return data


def write_posterior(path: str | os.PathLike, draws: PosteriorDraws, attrs: dict) -> None:
    """Write the NetCDF file atomically, with ``attrs`` on every group and on the root."""
    import h5py

    data = to_inference_data(draws, attrs)
    with atomic_path(path) as tmp:
        data.to_netcdf(str(tmp), engine="h5netcdf")
        with h5py.File(tmp, "a") as f:
            f.attrs.update({k: str(v) for k, v in attrs.items()})


def read_posterior(path: str | os.PathLike):  # noqa: ANN201 - arviz type
    """Read a posterior file written by :func:`write_posterior`."""
    az = _arviz()
    try:
        data = az.from_netcdf(str(path))
    except FileNotFoundError:
        raise GbsbiError(f"{path}: no such file") from None
    except (OSError, ValueError) as err:
        raise GbsbiError(f"{path}: not a readable posterior file ({err})") from None
    if "posterior" not in data.groups() or any(n not in data.posterior for n in NAMES):
        raise GbsbiError(f"{path}: not a gbsbi posterior file (needs D, sigma and c)")
    return data


def summary_rows(draws: PosteriorDraws) -> list[dict]:
    """One dict per scan: scan, group, T, and mean, sd, q05, q95 of D, sigma and c."""
    flat = draws.theta.reshape(-1, *draws.theta.shape[2:])  # (chains * draws, scans, 3)
    mean, sd = flat.mean(0), flat.std(0, ddof=1)
    low, high = np.quantile(flat, QUANTILES, axis=0)
    names = unique_names(draws.scan)
    rows = []
    for k, scan in enumerate(names):
        row = {"scan": scan, "group": "" if draws.group is None else str(draws.group[k]),
               "T": float(draws.temperature[k])}
        for j, name in enumerate(NAMES):
            row |= {f"{name}_mean": mean[k, j], f"{name}_sd": sd[k, j],
                    f"{name}_q05": low[k, j], f"{name}_q95": high[k, j]}
        rows.append(row)
    return rows


def write_csv(path: str | os.PathLike, rows: list[dict]) -> None:
    """The per-scan table as CSV, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v)
                             for k, v in row.items()})


def format_table(rows: list[dict]) -> str:
    """The per-scan table for the terminal: mean and [5 %, 95 %] of each parameter."""
    width = max(4, *(len(r["scan"]) for r in rows))
    head = f"{'scan':<{width}}  {'T [K]':>6}  " + "  ".join(
        f"{label:^30}" for label in ("D [nm^2/s]", "sigma [J/m^2]", "c"))
    lines = [head]
    for r in rows:
        cells = [f"{r[f'{n}_mean']:9.3g} [{r[f'{n}_q05']:8.3g}, {r[f'{n}_q95']:8.3g}]"
                 for n in NAMES]
        lines.append(f"{r['scan']:<{width}}  {r['T']:>6.1f}  " + "  ".join(cells))
    return "\n".join(lines)


def csv_beside(path: str | os.PathLike) -> Path:
    """The CSV path that goes with a posterior file: same name, suffix ``.csv``."""
    return Path(path).with_suffix(".csv")
