"""Posterior files: ArviZ InferenceData in NetCDF, and the per-scan CSV beside it
(docs/inference.md#posterior-file).

The NetCDF file has the groups

* ``posterior``: D [nm^2/s], sigma [J/m^2], c [1], dims (chain, draw, scan), attribute
  ``units`` on each; the coordinate ``scan`` holds the maps file's scan names;
* ``constant_data``: ``temperature`` [K], ``q`` [nm^-1], ``group`` where the maps file has
  groups, ``age`` [s] where it has windows' ages, and ``D_true``, ``sigma_true``, ``c_true``
  where it knows theta (synthetic data);
* ``observed_data``: ``phi`` and ``phi_corrected`` of each map;
* ``constant_data`` also holds ``misspecification_p`` where the model has a misspecification
  reference: each scan's combined p-value (:mod:`gbsbi.validation.misspecification`),
  attribute ``alpha`` the level below which the scan is flagged, and beside it each
  statistic's own p-value, ``misspecification_p_<test>`` (``density``, ``subspace``,
  ``ppc_map``, ``ppc_phi``, ``ppc_trend``), and ``misspecification_p_outside_prior`` (0 for a
  scan without draws, its posterior outside the prior; NaN otherwise) where a scan has none;

and every group's attributes, and the file's root attributes, name the model (``model_hash``,
``model``), the maps file (``maps_hash``, ``maps``) and the draws' ``seed``. The draws are
independent, so the split into chains is only for ArviZ's diagnostics (R-hat near 1 by
construction). ``arviz.from_netcdf`` reads the file; ``arviz.summary`` works on it.

The CSV has one row per scan: scan, group, T, age (where the maps have ages), and for D, sigma
and c the posterior mean, median, sd and 5 % and 95 % quantiles, and the misspecification
p-value where there is one. Tables for people (the terminal, the report) give the median with
the 90 % interval: the mean of a skewed posterior (sigma over decades) can lie outside its own
interval, the median never.
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


def arviz():  # noqa: ANN202 - arviz prints a FutureWarning on import
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
        misspecification: p-value of each scan's misspecification test, shape (scans,), or
            None.
        alpha: the level below which a scan is flagged.
        tests: each statistic's p-value by name, shape (scans,) each, or None.
        age: each window's age in s, shape (scans,), or None (maps without ages).
    """

    theta: np.ndarray
    scan: np.ndarray
    temperature: np.ndarray
    q: np.ndarray
    phi: np.ndarray
    phi_corrected: np.ndarray
    group: np.ndarray | None = None
    truth: np.ndarray | None = None
    misspecification: np.ndarray | None = None
    alpha: float = 0.05
    tests: dict[str, np.ndarray] | None = None
    age: np.ndarray | None = None

    @property
    def flagged(self) -> np.ndarray:
        """Whether each scan is flagged as unlike the simulations, shape (scans,): the combined
        p-value below alpha (NaN is not flagged), the one rule everywhere."""
        if self.misspecification is None:
            return np.zeros(len(self.scan), dtype=bool)
        return np.nan_to_num(np.asarray(self.misspecification, dtype=float), nan=1.0) < \
            self.alpha

    @property
    def without_draws(self) -> np.ndarray:
        """Whether each scan has no draws (its posterior outside the prior), shape (scans,)."""
        return without_draws(self.theta)

    def reasons(self, k: int) -> list[str]:
        """The statistics whose own p-value flags scan k (may be empty: their combination
        can flag a scan none flags alone)."""
        return [name for name, p in (self.tests or {}).items()
                if np.isfinite(p[k]) and p[k] < self.alpha]


def without_draws(theta: np.ndarray) -> np.ndarray:
    """Whether each scan of posterior draws theta, shape (..., scans, 3), has none (all NaN:
    its posterior outside the prior, docs/inference.md#outside-the-prior), shape (scans,)."""
    theta = np.asarray(theta)
    return np.isnan(theta).all(axis=(*range(theta.ndim - 2), theta.ndim - 1))


def unique_names(names: np.ndarray) -> np.ndarray:
    """Scan names made unique by a suffix ``#2``, ``#3`` ... where they repeat."""
    seen: dict[str, int] = {}
    out = []
    for name in map(str, names):
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return np.array(out, dtype=object)  # Python strings: messages print 'name', not np.str_


def to_inference_data(draws: PosteriorDraws, attrs: dict):  # noqa: ANN201 - arviz type
    """The InferenceData of the module docstring."""
    az = arviz()
    dims = {name: ["scan"] for name in NAMES}
    constant = {"temperature": draws.temperature, "q": draws.q}
    if draws.group is not None:
        constant["group"] = np.asarray(draws.group, dtype=str)
    if draws.age is not None:
        constant["age"] = np.asarray(draws.age, dtype=np.float64)
    if draws.truth is not None:
        constant.update({f"{n}_true": draws.truth[:, k] for k, n in enumerate(NAMES)})
    if draws.misspecification is not None:
        constant["misspecification_p"] = np.asarray(draws.misspecification, dtype=np.float64)
        for name, p in (draws.tests or {}).items():
            constant[f"misspecification_p_{name}"] = np.asarray(p, dtype=np.float64)
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
    if draws.misspecification is not None:
        data.constant_data["misspecification_p"].attrs.update(
            alpha=draws.alpha, test="smallest of the statistics' p-values "
            f"({', '.join(t for t in draws.tests or ['density'] if t != 'outside_prior')}), "
            "calibrated on held-out simulations; 0 for a scan without draws (its posterior "
            "outside the prior: misspecification_p_outside_prior)")
    data.constant_data["temperature"].attrs["units"] = "K"
    data.constant_data["q"].attrs["units"] = "nm^-1"
    if draws.age is not None:
        data.constant_data["age"].attrs["units"] = "s"
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
    az = arviz()
    try:
        data = az.from_netcdf(str(path))
    except FileNotFoundError:
        raise GbsbiError(f"{path}: no such file") from None
    except (OSError, ValueError) as err:
        raise GbsbiError(f"{path}: not a readable posterior file ({err})") from None
    if "posterior" not in data.groups() or any(n not in data.posterior for n in NAMES):
        raise GbsbiError(f"{path}: not a gbsbi posterior file (needs D, sigma and c)")
    return data


def draws_from_data(data) -> PosteriorDraws:  # noqa: ANN001 - arviz InferenceData
    """The :class:`PosteriorDraws` of a file read by :func:`read_posterior`."""
    post, const, obs = data.posterior, data.constant_data, data.observed_data
    theta = np.stack([post[n].transpose("chain", "draw", "scan").values for n in NAMES], -1)
    truth = None
    if all(f"{n}_true" in const for n in NAMES):
        truth = np.stack([const[f"{n}_true"].values for n in NAMES], -1)
    p = const["misspecification_p"] if "misspecification_p" in const else None
    prefix = "misspecification_p_"
    tests = {name[len(prefix):]: const[name].values for name in const.data_vars
             if name.startswith(prefix)}
    return PosteriorDraws(
        theta=theta, scan=np.asarray(post["scan"].values, dtype=str),
        temperature=const["temperature"].values, q=const["q"].values,
        phi=obs["phi"].values, phi_corrected=obs["phi_corrected"].values,
        group=np.asarray(const["group"].values, dtype=str) if "group" in const else None,
        truth=truth, misspecification=None if p is None else p.values,
        alpha=0.05 if p is None else float(p.attrs.get("alpha", 0.05)),
        tests=tests or None, age=const["age"].values if "age" in const else None,
    )


def summary_rows(draws: PosteriorDraws) -> list[dict]:
    """One dict per scan: scan, group, T, age (where there are ages), and mean, median, sd,
    q05, q95 of D, sigma and c, and the misspecification p-value ``misspec_p`` where there is
    one."""
    flat = draws.theta.reshape(-1, *draws.theta.shape[2:])  # (chains * draws, scans, 3)
    mean, sd = flat.mean(0), flat.std(0, ddof=1)
    low, median, high = np.quantile(flat, (QUANTILES[0], 0.5, QUANTILES[1]), axis=0)
    names = unique_names(draws.scan)
    rows = []
    for k, scan in enumerate(names):
        row = {"scan": scan, "group": "" if draws.group is None else str(draws.group[k]),
               "T": float(draws.temperature[k])}
        if draws.age is not None:
            row["age"] = float(draws.age[k])
        for j, name in enumerate(NAMES):
            row |= {f"{name}_mean": mean[k, j], f"{name}_median": median[k, j],
                    f"{name}_sd": sd[k, j], f"{name}_q05": low[k, j], f"{name}_q95": high[k, j]}
        if draws.misspecification is not None:
            row["misspec_p"] = float(draws.misspecification[k])
            row["flagged"] = bool(draws.flagged[k])
            row["flagged_by"] = " ".join(draws.reasons(k)) if draws.flagged[k] else ""
            row |= {f"p_{name}": float(p[k]) for name, p in (draws.tests or {}).items()}
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


def format_table(rows: list[dict], alpha: float = 0.05) -> str:
    """The per-scan table for the terminal: median and [5 %, 95 %] of each parameter (the
    median lies inside its interval, a skewed posterior's mean may not), and the
    misspecification p-value (``!`` below ``alpha``) where the rows have one; flagged scans
    first, with the statistics that flag them."""
    rows = sorted(rows, key=lambda r: not r.get("flagged", False))
    width = max(4, *(len(r["scan"]) for r in rows))
    misspec = "misspec_p" in rows[0]
    aged = "age" in rows[0]
    head = f"{'scan':<{width}}  {'T [K]':>6}  " + ("age [s]  " if aged else "") + "  ".join(
        f"{label:^30}" for label in ("D [nm^2/s]", "sigma [J/m^2]", "c"))
    lines = ["median [5 %, 95 %] of each posterior",
             head + ("  misspec p" if misspec else "")]
    for r in rows:
        cells = [f"{r[f'{n}_median']:9.3g} [{r[f'{n}_q05']:8.3g}, {r[f'{n}_q95']:8.3g}]"
                 for n in NAMES]
        line = f"{r['scan']:<{width}}  {r['T']:>6.1f}  " + \
            (f"{r['age']:>7.0f}  " if aged else "") + "  ".join(cells)
        if misspec:
            flag = " !" if r.get("flagged", r["misspec_p"] < alpha) else ""
            line += f"  {r['misspec_p']:9.3f}{flag}"
            if flag:
                line += f" not to be trusted ({r.get('flagged_by') or 'combined'})"
        lines.append(line)
    return "\n".join(lines)


def csv_beside(path: str | os.PathLike) -> Path:
    """The CSV path that goes with a posterior file: same name, suffix ``.csv``."""
    return Path(path).with_suffix(".csv")
