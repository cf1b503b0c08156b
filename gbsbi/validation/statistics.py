r"""The statistics of the per-scan misspecification test and how they become one p-value
(docs/validation.md#misspecification-per-scan). NumPy only.

Each statistic is calibrated on held-out simulations of the model: its p-value for a scan is
the conformal rank of the scan's value among the held-out values,

.. math::

    p = \frac{1 + \#\{j : s_j \text{ at least as extreme as } s_o\}}{1 + m},

uniform (up to the grid 1/(m+1)) for a scan from the simulator, whatever the statistic.

* ``subspace``: the part of a scan's standardised reduced map (and lag profile) outside the
  principal subspace of the held-out simulations' (the components that hold 99 % of their
  variance): what the embedding f(x) may throw away. Large is extreme.
* ``ppc_map``: a posterior predictive discrepancy. Replicates of the scan are simulated from
  its posterior draws at its noise level (:func:`gbsbi.validation.ppc.replicate_maps`); the
  discrepancy of a reduced map r against replicates is the mean over bins of
  (r - mean_rep)^2 / var_rep; the raw predictive p-value is the normal upper tail of the
  scan's log discrepancy standardised by the replicates' (each against the others), a
  continuous value (a share of 40 replicates would take 41 values, and their ties kept the
  calibrated p-values from being uniform). Predictive p-values of a correct model are not
  uniform, which is why the held-out simulations' own calibrate them. Small is extreme.
* ``ppc_phi``: the same with the plain Phi of the map standardised by its replicates',
  two-sided.
* ``ppc_trend``: whether the map changes along the window where the model's does not. For
  lags in octave bands (1-2, 2-4, ..., 32-63 frames) the map's mean C(t1, t1 + lag) over the
  pairs of each quarter of the window (by their mean time t1 + lag / 2), averaged over the
  band's lags that have pairs in every quarter, gives per band the least-squares slope over
  the four quarters
  (:func:`trend_profile`; 0 for a map that depends on t2 - t1 only); the scan's slopes
  against its replicates' make a discrepancy and a raw p-value as for ``ppc_map``. A contrast
  or a rate that drifts over the window changes C along the diagonal; the reduced map holds
  that too, but spread over all its bins, where a trend of a few bins is lost.

The p-values combine into one by their minimum, calibrated on the same held-out simulations
(min-p with a calibrated threshold): each null simulation's p-values against the other null
simulations (leave one out) give the null distribution of the minimum, and a scan's combined
p-value is the conformal rank of its minimum among those. A statistic that sees a shift by
itself is not diluted by three that do not (as an average of the p-values, the Cauchy
combination of Liu and Xie 2020, would dilute it; :func:`cauchy_combination` is kept for
comparison).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

#: Share of the held-out simulations' variance the principal subspace keeps.
SUBSPACE_VARIANCE = 0.99
#: Posterior draws replicated per scan by the predictive statistics.
PPC_DRAWS = 40
#: The lag bands of the trend statistic, in frames: [1, 2), [2, 4), ..., [32, 64).
TREND_BANDS = (1, 2, 4, 8, 16, 32, 64)
#: The parts of the window the trend statistic's slope is fitted over.
TREND_PARTS = 4


def conformal_pvalues(null: np.ndarray, values: np.ndarray, larger_is_extreme: bool
                      ) -> np.ndarray:
    """p = (1 + #{null at least as extreme}) / (1 + m) for each value, shape of ``values``;
    NaN values give NaN."""
    null = np.sort(np.asarray(null, dtype=np.float64))
    null = null[np.isfinite(null)]
    values = np.asarray(values, dtype=np.float64)
    if larger_is_extreme:
        count = len(null) - np.searchsorted(null, values, side="left")
    else:
        count = np.searchsorted(null, values, side="right")
    p = (1 + count) / (1 + len(null))
    return np.where(np.isfinite(values), p, np.nan)


def loo_pvalues(null: np.ndarray, larger_is_extreme: bool) -> np.ndarray:
    """Each null value's conformal p-value against the other null values, shape (m,): the
    p-values a simulation of the null would get."""
    null = np.asarray(null, dtype=np.float64)
    ordered = np.sort(null)
    if larger_is_extreme:
        count = len(null) - np.searchsorted(ordered, null, side="left")
    else:
        count = np.searchsorted(ordered, null, side="right")
    return count / len(null)  # (1 + #others at least as extreme) / (1 + (m - 1))


def min_p_combination(p: np.ndarray, null_p: np.ndarray) -> np.ndarray:
    """The calibrated minimum (module docstring): the conformal rank of each scan's smallest
    p-value, p shape (n, k), among the null simulations' smallest, null_p shape (m, k); NaN
    p-values are left out of a minimum."""
    scan_min = np.nanmin(np.where(np.isfinite(p), p, np.nan), axis=1)
    null_min = np.nanmin(np.where(np.isfinite(null_p), null_p, np.nan), axis=1)
    return conformal_pvalues(null_min, scan_min, larger_is_extreme=False)


def cauchy_combination(p: np.ndarray) -> np.ndarray:
    """The Cauchy combination of p-values along the last axis (NaN ones left out; all NaN
    gives NaN)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-15, 1 - 1e-15)
    finite = np.isfinite(p)
    t = np.where(finite, np.tan((0.5 - np.where(finite, p, 0.5)) * np.pi), 0.0)
    count = finite.sum(axis=-1)
    with np.errstate(invalid="ignore"):
        mean = t.sum(axis=-1) / count
    return np.where(count > 0, 0.5 - np.arctan(mean) / np.pi, np.nan)


@dataclass(frozen=True)
class Subspace:
    """The principal subspace of held-out simulations' standardised inputs.

    Attributes:
        mean: the mean input, shape (P,).
        components: orthonormal principal directions as rows, shape (k, P).
        columns: which input entries it is made of (map bins and lag profile), shape (P,).
    """

    mean: np.ndarray
    components: np.ndarray
    columns: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, columns: np.ndarray,
            variance: float = SUBSPACE_VARIANCE) -> Subspace:
        """The subspace of standardised inputs x, shape (n, D), that holds ``variance`` of
        their variance (at least one component, at most n - 1)."""
        z = np.asarray(x, dtype=np.float64)[:, columns]
        mean = z.mean(axis=0)
        _, s, vt = np.linalg.svd(z - mean, full_matrices=False)
        share = np.cumsum(s**2) / max(float(np.sum(s**2)), 1e-300)
        k = int(np.clip(np.searchsorted(share, variance) + 1, 1, max(1, len(z) - 1)))
        return cls(mean, vt[:k], np.asarray(columns))

    def residual(self, x: np.ndarray) -> np.ndarray:
        """Mean squared part of each standardised input outside the subspace, shape (n,)."""
        z = np.asarray(x, dtype=np.float64)[:, self.columns] - self.mean
        inside = (z @ self.components.T) @ self.components
        return np.mean((z - inside) ** 2, axis=1)


def _loo_discrepancies(reps: np.ndarray, observed: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean over bins of (r - mean)^2 / var of the observed r against all replicates, and of
    each replicate against the others; reps (D, B), observed (B,), bins with NaN left out."""
    D = len(reps)
    keep = np.isfinite(observed) & np.isfinite(reps).all(axis=0)
    reps, observed = reps[:, keep], observed[keep]
    total, squares = reps.sum(axis=0), (reps**2).sum(axis=0)
    mean, var = total / D, (squares - total**2 / D) / (D - 1)
    floor = 1e-12 + 1e-9 * np.median(var) if var.size else 1e-12
    d_obs = float(np.mean((observed - mean) ** 2 / np.maximum(var, floor)))
    mean_o = (total - reps) / (D - 1)
    var_o = (squares - reps**2 - (D - 1) * mean_o**2) / (D - 2)
    d_rep = np.mean((reps - mean_o) ** 2 / np.maximum(var_o, floor), axis=1)
    return d_obs, d_rep


def discrepancy_pvalue(observed: np.ndarray, reps: np.ndarray) -> float:
    """The raw predictive p-value of a vector of summaries, shape (B,), against its replicates'
    (D, B): the normal upper tail of the log discrepancy standardised by the replicates' (each
    against the others)."""
    from scipy.stats import norm

    if not (np.isfinite(observed) & np.isfinite(reps).all(axis=0)).any():
        return float("nan")
    d_obs, d_rep = _loo_discrepancies(reps, observed)
    logs = np.log(np.maximum(d_rep, 1e-300))
    spread = max(float(np.std(logs, ddof=1)), 1e-12)
    return float(norm.sf((np.log(max(d_obs, 1e-300)) - logs.mean()) / spread))


def trend_profile(C: np.ndarray) -> np.ndarray:
    """Per lag band, the least-squares slope of the map's mean C(t1, t2) over the parts of the
    window (module docstring, ``ppc_trend``).

    Each lag's pairs are averaged within each part (by their mean time) first, and a band's
    value in a part is the mean over the band's lags that have pairs in every part: every part
    weighs the same lags alike, so a map that depends on t2 - t1 only has slope 0 exactly,
    whatever T, missing frames, or pairs of each lag a part holds.

    Args:
        C: maps, shape (n, T, T), NaN on missing frames (left out).

    Returns:
        The slopes, shape (n, bands); NaN for a band none of whose lags has pairs in every
        part.
    """
    C = np.asarray(C, dtype=np.float64)
    n, T = C.shape[0], C.shape[-1]
    edges = np.asarray(TREND_BANDS)
    per_lag = np.full((n, TREND_PARTS, TREND_BANDS[-1]), np.nan)
    for lag in range(TREND_BANDS[0], min(TREND_BANDS[-1], T)):
        t1 = np.arange(T - lag)
        part = np.minimum((t1 + lag / 2) * TREND_PARTS // (T - 1), TREND_PARTS - 1).astype(int)
        pairs = C[:, t1, t1 + lag]
        finite = np.isfinite(pairs)
        sums = np.zeros((n, TREND_PARTS))
        counts = np.zeros((n, TREND_PARTS))
        np.add.at(sums.T, part, np.where(finite, pairs, 0.0).T)
        np.add.at(counts.T, part, finite.T)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_lag[:, :, lag] = sums / counts
    band = np.searchsorted(edges, np.arange(TREND_BANDS[-1]), side="right") - 1
    common = np.isfinite(per_lag).all(axis=1, keepdims=True)  # (n, 1, lags): in every part
    kept = np.where(common, per_lag, np.nan)
    with warnings.catch_warnings():  # a band with no lag in every part: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.stack([np.nanmean(kept[:, :, band == b], axis=2)
                          for b in range(len(edges) - 1)], axis=2)  # (n, parts, bands)
    w = np.arange(TREND_PARTS) - (TREND_PARTS - 1) / 2
    return np.einsum("npb,p->nb", means, w / (w @ w))


def predictive_pvalues(reduced_obs: np.ndarray, reduced_reps: np.ndarray, phi_obs: float,
                       phi_reps: np.ndarray) -> tuple[float, float]:
    """The raw predictive p-values of one scan (module docstring): of the reduced map
    (bins, shape (B,), against replicates (D, B)) and of the plain Phi (two-sided).

    Each is a normal tail probability of the scan's standardised position among its
    replicates (the map's discrepancy in logarithm, one-sided; Phi two-sided), not the share
    of D replicates beyond it: a share takes D + 1 values only, and their ties (a quarter of
    the simulations of a model sat at the largest) kept the calibrated p-values from being
    uniform. Continuous values have no ties; the calibration on held-out simulations makes
    the p-values exact whatever the normal approximation misses.
    """
    from scipy.stats import norm

    p_map = discrepancy_pvalue(reduced_obs, reduced_reps)
    reps = phi_reps[np.isfinite(phi_reps)]
    if not np.isfinite(phi_obs) or len(reps) < 2:
        return float(p_map), float("nan")
    scale = max(float(np.std(reps, ddof=1)), 1e-12)
    p_phi = 2 * norm.sf(abs(phi_obs - reps.mean()) / scale)
    return float(p_map), float(p_phi)
