r"""Noise-robust Phi of a single two-time map (docs/phi.md#noise-corrected-phi).

Photon noise e is not time-translation invariant, so it adds to the drift dC almost entirely:
with s2 the mean noise variance per element and n = T (T - 1) / 2 pairs over T - 1 diagonals,

.. math::

    E[\operatorname{mean}(\delta C^2)] \approx \operatorname{mean}(\delta C_0^2)
        + s^2 \,(1 - (T - 1) / n), \qquad
    E[\operatorname{var}(C)] \approx \operatorname{var}(C_0) + s^2,

(the diagonal means absorb 1 / n_k of each element's noise), and the corrected measure is

.. math::

    \Phi_{corr} = \frac{\operatorname{mean}(\delta C^2) - s^2 (1 - (T - 1) / n)}
                       {\operatorname{var}(C) - s^2} \quad \text{clipped to } [0, 1].

Estimating s2 from the map alone. The drift of a physical map is smooth along each diagonal
(it changes with the sample's age on the scale of the relaxation, not of a frame) and from one
lag to the next, while photon noise is nearly white. Take on each diagonal k the orthonormal
DCT-II coefficients a_{k,j}, j = 1..J (the j = 0 term is the diagonal mean), then for each j
the orthonormal DCT-II over k of a_{k,j}, keeping p < P: an orthonormal basis of J P smooth
drift patterns V. The noise variance is the drift's power per dimension outside V,

.. math::

    \hat s^2 = \frac{\lVert \delta C \rVert^2 - \lVert P_V\, \delta C \rVert^2}
                    {n - (T - 1) - J P},

which tracks the noise actually realised in the map rather than its expectation, so Phi_corr
errs only by the noise inside V and the signal outside it. Defaults J = 6, P = 8 capture all but
about 0.5 % of the drift energy of the GB model's maps; on exact-model maps at 0.05 counts per
pixel per frame and 20,000 pixels (128 frames) the median |Phi_corr - Phi_noiseless| is 0.025,
against 0.70 for the plain Phi and 0.10 for the split-half Phi (studies/validate_noise_model.py).
Shot x speckle cross terms make the noise about 20 % stronger than average inside V, a small
upward bias at high noise. Drift that is rough on the frame scale is removed with the noise,
including the GB model's own finite-N_x sampling roughness. A known expected noise variance
(``noise_var``) errs more (median 0.07 in the same test): the noise realised in one map
fluctuates by about 2 % around its expectation, which the map's own estimate follows.

Dropped frames: NaN elements are replaced by their diagonal's mean (no drift), s2 is rescaled by
the fraction of valid pairs, and the diagonal means count the valid elements only.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from gbsbi.summaries.phi import _drift_of_pairs, _pair_values, _pairs_by_lag


@lru_cache(maxsize=4096)
def _dct_rows(n: int, count: int) -> np.ndarray:
    """The first ``count`` orthonormal DCT-II basis vectors of length n, shape (count, n)
    (cached, read-only)."""
    p = np.arange(count)[:, None]
    rows = np.cos(np.pi * p * (np.arange(n)[None, :] + 0.5) / n) * np.sqrt(2.0 / n)
    rows[0] /= np.sqrt(2.0)
    rows.setflags(write=False)
    return rows


@lru_cache(maxsize=4)
def smooth_drift_basis(T: int, n_age: int = 6, n_lag: int = 8) -> np.ndarray:
    """Orthonormal basis of smooth drift patterns over the pairs i < j (module docstring).

    For inspection and tests: :func:`phi_corrected` projects diagonal by diagonal without
    forming this (T (T - 1) / 2, J P) matrix.

    Args:
        T: number of frames.
        n_age: J, DCT orders j = 1..J along each diagonal (the age direction).
        n_lag: P, DCT orders p = 0..P-1 across the lags, for each j.

    Returns:
        Basis, shape (T (T - 1) / 2, r) in the pair order of ``gbsbi.summaries.phi.drift``
        (sorted by lag), float64, r <= J P; every column sums to zero on each diagonal.
    """
    i, _, starts, lags = _pairs_by_lag(T)
    columns = []
    for a in range(1, n_age + 1):
        n_diag = T - 1 - a  # lags k = 1..T-1-a have n_k = T - k > a elements
        if n_diag < 1:
            break
        along = np.zeros(len(i))
        for k in range(1, n_diag + 1):
            s = starts[k - 1]
            along[s : s + T - k] = _dct_rows(T - k, a + 1)[a]
        across = _dct_rows(n_diag, min(n_lag, n_diag))
        for row in across:
            weight = np.zeros(T)  # weight per lag k, index k
            weight[1 : n_diag + 1] = row
            columns.append(along * weight[lags])
    return np.stack(columns, axis=1) if columns else np.zeros((len(i), 0))


def smooth_energy(dC: np.ndarray, n_age: int = 6, n_lag: int = 8) -> np.ndarray:
    """||P_V dC||^2, the drift's energy in the smooth subspace V, diagonal by diagonal.

    Args:
        dC: drift over the pairs i < j sorted by lag (as from ``drift``), shape (..., n); no NaN.
        n_age: J, DCT orders along each diagonal.
        n_lag: P, DCT orders across the lags.

    Returns:
        Energy, shape (...), float64.
    """
    T = int(round((1 + np.sqrt(1 + 8 * dC.shape[-1])) / 2))
    _, _, starts, _ = _pairs_by_lag(T)
    along = np.zeros((*dC.shape[:-1], T - 1, n_age))
    for k in range(1, T - 1):
        m = min(n_age, T - k - 1)
        segment = dC[..., starts[k - 1] : starts[k - 1] + T - k]
        along[..., k - 1, :m] = segment @ _dct_rows(T - k, m + 1)[1:].T
    energy = np.zeros(dC.shape[:-1])
    for a in range(1, min(n_age, T - 2) + 1):
        n_diag = T - 1 - a
        across = along[..., :n_diag, a - 1] @ _dct_rows(n_diag, min(n_lag, n_diag)).T
        energy += np.sum(across**2, axis=-1)
    return energy


def _rank(T: int, n_age: int, n_lag: int) -> int:
    """Dimension J P of V, less where the map is too small."""
    return sum(min(n_lag, T - 1 - a) for a in range(1, min(n_age, T - 2) + 1))


def _energies(C: np.ndarray, n_age: int, n_lag: int) -> dict[str, np.ndarray]:
    """Drift energies, TTI energy and counts of one batch of maps."""
    T = np.shape(C)[-1]
    _, _, starts, lags = _pairs_by_lag(T)
    values = _pair_values(C)
    missing = np.isnan(values)
    if not missing.any():  # no dropped frame: fewer passes, the same values
        c_tti, dC = _drift_of_pairs(values, starts, lags)
        n_k = (T - np.arange(1, T)).astype(np.float64)
        total = values.mean(axis=-1)
        shape = values.shape[:-1]
        return {
            "drift": np.einsum("...i,...i->...", dC, dC),
            "smooth": smooth_energy(dC, n_age, n_lag),
            "tti": np.sum(n_k * (c_tti - total[..., None]) ** 2, axis=-1),
            "rank": _rank(T, n_age, n_lag),
            "pairs": np.full(shape, len(lags)),
            "diagonals": np.full(shape, T - 1),
            "fraction": np.ones(shape),
            "n": len(lags),
            "T": T,
        }
    # As _drift_of_pairs, with the missing pairs' drift set to 0 and each pass shared.
    np.copyto(values, 0.0, where=missing)
    valid = ~missing
    n_valid = np.add.reduceat(valid, starts, axis=-1)
    sums = np.add.reduceat(values, starts, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c_tti = sums / n_valid
    dC = values
    dC -= c_tti[..., lags - 1]
    np.copyto(dC, 0.0, where=missing)
    pairs = n_valid.sum(axis=-1)
    total = sums.sum(axis=-1) / pairs
    has = n_valid > 0
    tti = np.sum(np.where(has, n_valid * (np.where(has, c_tti, 0) - total[..., None]) ** 2, 0), -1)
    return {
        "drift": np.einsum("...i,...i->...", dC, dC),
        "smooth": smooth_energy(dC, n_age, n_lag),
        "tti": tti,
        "rank": _rank(T, n_age, n_lag),
        "pairs": pairs,
        "diagonals": has.sum(axis=-1),
        "fraction": pairs / len(lags),
        "n": len(lags),
        "T": T,
    }


def estimate_noise_var(C: np.ndarray, n_age: int = 6, n_lag: int = 8) -> np.ndarray:
    """Mean noise variance s2 per off-diagonal element, from one map's rough drift.

    Args:
        C: two-time maps, shape (..., T, T); NaN marks dropped frames.
        n_age: J, smooth orders along each diagonal.
        n_lag: P, smooth orders across the lags.

    Returns:
        s2, shape (...), float64; NaN where the map is too small (T (T - 1) / 2 - (T - 1) <= J P).
    """
    e = _energies(C, n_age, n_lag)
    return _noise_var(e)


def _noise_var(e: dict[str, np.ndarray]) -> np.ndarray:
    dof = e["n"] - (e["T"] - 1) - e["rank"]
    if dof <= 0:
        return np.full(np.shape(e["drift"]), np.nan)
    return (e["drift"] - e["smooth"]) / dof / e["fraction"]


def _corrected(e: dict[str, np.ndarray], s2: np.ndarray) -> np.ndarray:
    noise_drift = s2 * (e["pairs"] - e["diagonals"])
    numerator = e["drift"] - noise_drift
    denominator = numerator + e["tti"] - s2 * (e["diagonals"] - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.clip(numerator / denominator, 0.0, 1.0)
    return np.where(denominator > 0, out, np.nan)


def phi_corrected(
    C: np.ndarray,
    noise_var: float | np.ndarray | None = None,
    n_age: int = 6,
    n_lag: int = 8,
) -> np.ndarray:
    """Phi with the photon-noise contribution removed (module docstring).

    Args:
        C: two-time maps, shape (..., T, T); NaN marks dropped frames; the diagonal is ignored.
        noise_var: the noise variance per element when known, e.g. from
            ``simulators.noise.estimator_variance`` with the measurement's nbar and N_pix: a
            scalar, shape (...) per map, or shape (..., T, T) per element (averaged over the
            valid pairs i < j). None estimates it from the map (:func:`estimate_noise_var`).
        n_age: J, smooth orders along each diagonal.
        n_lag: P, smooth orders across the lags.

    Returns:
        Phi_corr, shape (...), in [0, 1]; NaN where the map's variance does not exceed the
        noise (nothing but noise is left to measure).
    """
    e = _energies(C, n_age, n_lag)
    if noise_var is None:
        s2 = _noise_var(e)
    else:
        s2 = np.asarray(noise_var, dtype=np.float64)
        if s2.ndim >= 2 and s2.shape[-2:] == np.shape(C)[-2:]:
            i, j, _, _ = _pairs_by_lag(np.shape(C)[-1])
            mask = ~np.isnan(np.asarray(C, dtype=np.float64)[..., i, j])
            s2 = np.nansum(np.where(mask, s2[..., i, j], np.nan), -1) / mask.sum(-1)
    return _corrected(e, s2)


def noise_summary(
    C: np.ndarray, n_age: int = 6, n_lag: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The plain Phi, Phi_corr and the noise variance s2 of each map, from one pass.

    The plain value is mean(dC^2) / var(C) through var(C) = var(C_TTI) + mean(dC^2); it equals
    :func:`gbsbi.summaries.phi.phi` to rounding (0 for a constant map, NaN without a finite pair).

    Args:
        C: two-time maps, shape (..., T, T); NaN marks dropped frames; the diagonal is ignored.
        n_age: J, smooth orders along each diagonal.
        n_lag: P, smooth orders across the lags.

    Returns:
        ``(phi, phi_corrected, s2)``, each shape (...), float64, as
        :func:`gbsbi.summaries.phi.phi`, :func:`phi_corrected` and :func:`estimate_noise_var`
        give them.
    """
    e = _energies(C, n_age, n_lag)
    total = e["drift"] + e["tti"]
    with np.errstate(invalid="ignore", divide="ignore"):
        plain = np.where(total > 0, e["drift"] / total, np.where(e["pairs"] > 0, 0.0, np.nan))
    s2 = _noise_var(e)
    return plain, _corrected(e, s2), s2


def phi_and_corrected(
    C: np.ndarray, n_age: int = 6, n_lag: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """The plain Phi and Phi_corr of each map from one pass over its pairs (what banks store);
    see :func:`noise_summary`."""
    plain, corrected, _ = noise_summary(C, n_age, n_lag)
    return plain, corrected
