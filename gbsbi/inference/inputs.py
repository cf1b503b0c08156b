r"""What the posterior network sees of one scan (docs/inference.md#what-the-network-sees), computed
with NumPy.

For a two-time map C of T frames, the input vector x joins, in this order:

* ``map``: the map reduced to R x R bins, C'(a, b) = mean of C(i, j) - 1 over frames i in bin
  a and j in bin b. The diagonal C(t, t) carries the Poisson self-term and is never used: it is
  replaced by the mean of its lag-one neighbours C(t - 1, t), C(t, t + 1) before binning.
  NaN entries (dropped frames) are left out of each mean; a bin with no valid entry is 0.
* ``valid``: the fraction of valid (not dropped) frames in each of the R bins; the network
  forms the mask channel valid_a valid_b from it.
* ``lags``: the diagonal averages C_TTI(k) - 1 (docs/phi.md#definition) averaged over R bins of the
  lags k = 1 .. T - 1, weighted by the number of valid pairs at each lag.
* ``scalars``: the plain Phi, the noise-corrected Phi (0 where it is undefined), a flag that is
  1 where it is undefined (a map of nothing but noise), log10 of the noise variance s2 per
  element (:func:`gbsbi.summaries.phi_noise.noise_summary`) and the temperature, scaled to
  [-1, 1] over the prior's range; for a model whose windows have ages, then the age, scaled to
  [-1, 1] over the prior's range of ages.

Bins are graded: bin edges e_k = T (exp(g k / R) - 1) / (exp(g) - 1), so the first bins are
about one frame wide and the last about e^g times wider. Early ages and short lags are where a
fast relaxation (large sigma) and a fast bulk decay (large D) leave their trace; late, slowly
changing parts of the map are averaged more, which also averages out their photon noise.
g = 0 gives uniform blocks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from gbsbi.summaries.phi import drift
from gbsbi.summaries.phi_noise import noise_summary

#: Names of the scalar inputs, in order.
SCALARS = ("phi", "phi_corrected", "noise_only", "log10_noise_var", "temperature")
#: Floor of the noise variance before its logarithm (a noiseless map has s2 about 0).
_NOISE_FLOOR = 1e-12


@dataclass(frozen=True)
class InputConfig:
    """How a map is reduced before the network.

    Attributes:
        bins: R, bins per axis of the reduced map and of the lag profile.
        grading: g, growth of the bin width along the axis (0 = uniform blocks).
        temperature: (low, high) in K mapped to [-1, 1]; the prior's range of T.
        age: (low, high) in s mapped to [-1, 1], the prior's range of window ages; None: the
            network sees no age (every window starts at the initial shape).
    """

    bins: int = 32
    grading: float = 2.0
    temperature: tuple[float, float] = (300.0, 500.0)
    age: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "temperature", tuple(float(v) for v in self.temperature))
        if int(self.bins) != self.bins or self.bins < 2:
            raise ValueError(f"bins must be an integer >= 2, got {self.bins}")
        if not np.isfinite(self.grading) or self.grading < 0:
            raise ValueError(f"grading must be finite and >= 0, got {self.grading}")
        low, high = self.temperature
        if not high > low:
            raise ValueError(f"temperature range must have high > low, got {self.temperature}")
        if self.age is not None:
            object.__setattr__(self, "age", tuple(float(v) for v in self.age))
            if not self.age[1] > self.age[0] >= 0:
                raise ValueError(f"age range must have high > low >= 0, got {self.age}")

    @property
    def layout(self) -> InputLayout:
        """Where each part sits in x."""
        return InputLayout(self.bins, self.age is not None)

    def to_dict(self) -> dict:
        out = asdict(self)
        if self.age is None:  # the record of a model without ages, as before ages existed
            del out["age"]
        return out


@dataclass(frozen=True)
class InputLayout:
    """Where each part sits in the input vector x of length :attr:`size`; with ``aged`` the
    age follows the scalars of SCALARS as one more scalar."""

    bins: int
    aged: bool = False

    @property
    def map(self) -> slice:
        return slice(0, self.bins * self.bins)

    @property
    def valid(self) -> slice:
        start = self.bins * self.bins
        return slice(start, start + self.bins)

    @property
    def lags(self) -> slice:
        start = self.bins * (self.bins + 1)
        return slice(start, start + self.bins)

    @property
    def scalars(self) -> slice:
        start = self.bins * (self.bins + 2)
        return slice(start, start + len(SCALARS) + self.aged)

    @property
    def size(self) -> int:
        return self.bins * (self.bins + 2) + len(SCALARS) + self.aged


def bin_edges(n: int, bins: int, grading: float) -> np.ndarray:
    """Edges of ``bins`` graded bins over n items (module docstring).

    Args:
        n: number of items (frames or lags), at least ``bins``.
        bins: R, number of bins.
        grading: g, 0 for uniform bins.

    Returns:
        Integer edges, shape (R + 1,), from 0 to n, every bin at least one item wide.
    """
    if n < bins:
        raise ValueError(f"cannot make {bins} bins of {n} items")
    s = np.arange(bins + 1) / bins
    shape = s if grading == 0 else np.expm1(grading * s) / np.expm1(grading)
    edges = np.round(n * shape).astype(int)
    for k in range(1, bins + 1):  # at least one item per bin, and room for the rest
        edges[k] = min(max(edges[k], edges[k - 1] + 1), n - (bins - k))
    return edges


def _bin_matrix(edges: np.ndarray) -> np.ndarray:
    """0/1 matrix of shape (R, n) with row a selecting the items of bin a."""
    items = np.arange(edges[-1])
    return ((items >= edges[:-1, None]) & (items < edges[1:, None])).astype(np.float32)


def _without_diagonal(C: np.ndarray) -> np.ndarray:
    """C - 1 with its diagonal replaced by the mean of the lag-one neighbours
    C(t - 1, t) and C(t, t + 1) (one of them at the ends, the valid one where the other is
    NaN), float32."""
    C = np.asarray(C, dtype=np.float32) - np.float32(1)
    T = C.shape[-1]
    side = np.diagonal(C, offset=1, axis1=-2, axis2=-1)
    left, right = side[..., :-1], side[..., 1:]
    middle = np.where(np.isnan(left), right, np.where(np.isnan(right), left, (left + right) / 2))
    C[..., np.arange(T), np.arange(T)] = np.concatenate(
        [side[..., :1], middle, side[..., -1:]], axis=-1)
    return C


def reduce_map(C: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bin maps without their diagonal, and the fraction of valid frames per bin.

    Args:
        C: two-time maps, shape (n, T, T); NaN marks dropped frames.
        edges: frame bin edges, shape (R + 1,), from :func:`bin_edges`.

    Returns:
        Reduced maps of C - 1, shape (n, R, R), float32 (0 where a bin has no valid entry),
        and the fraction of valid frames per bin, shape (n, R), float32.
    """
    A = _bin_matrix(edges)
    off = _without_diagonal(C)
    valid = ~np.isnan(off)
    with np.errstate(invalid="ignore"):
        frames_ok = valid.any(axis=-1).astype(np.float32)  # a dropped frame is a NaN row
    fraction = frames_ok @ A.T / A.sum(axis=1)
    if valid.all():
        reduced = A @ off @ A.T / np.outer(A.sum(1), A.sum(1))
        return reduced.astype(np.float32), fraction.astype(np.float32)
    num = A @ np.where(valid, off, 0) @ A.T
    den = A @ valid.astype(np.float32) @ A.T
    with np.errstate(invalid="ignore", divide="ignore"):
        reduced = np.where(den > 0, num / den, 0)
    return reduced.astype(np.float32), fraction.astype(np.float32)


def lag_profile(C: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """C_TTI(k) - 1 averaged over lag bins, weighted by the valid pairs at each lag.

    Args:
        C: two-time maps, shape (n, T, T).
        edges: lag bin edges over the T - 1 lags, shape (R + 1,).

    Returns:
        Shape (n, R), float32; 0 for a bin with no valid pair.
    """
    T = np.shape(C)[-1]
    c_tti, dC = drift(C)
    counts = np.add.reduceat(~np.isnan(dC), _lag_starts(T), axis=-1).astype(np.float64)
    values = np.where(counts > 0, c_tti - 1, 0) * counts
    A = _bin_matrix(edges).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(counts @ A.T > 0, (values @ A.T) / (counts @ A.T), 0)
    return out.astype(np.float32)


def _lag_starts(T: int) -> np.ndarray:
    """Start of each lag's segment in the pair order of :func:`gbsbi.summaries.phi.drift`."""
    lengths = T - np.arange(1, T)
    return np.r_[0, np.cumsum(lengths)[:-1]]


def network_inputs(C: np.ndarray, temperature: np.ndarray, config: InputConfig,
                   age: np.ndarray | None = None) -> np.ndarray:
    """The input vectors x of a batch of maps (module docstring).

    Args:
        C: two-time maps, shape (n, T, T), with T >= R + 1; NaN marks dropped frames.
        temperature: temperature T of each map in K, shape (n,).
        config: the reduction.
        age: each window's age in s, shape (n,), or None for 0; used where ``config`` has an
            age range.

    Returns:
        x, shape (n, :attr:`InputLayout.size`), float32.
    """
    C = np.asarray(C, dtype=np.float32)
    if C.ndim != 3 or C.shape[1] != C.shape[2]:
        raise ValueError(f"maps must have shape (n, T, T), found {C.shape}")
    T, R = C.shape[-1], config.bins
    # One BLAS thread: these products are small, and with a second thread waiting for a busy
    # core they ran 5 to 10 times slower on a shared 2-core machine.
    with threadpool_limits(1):
        reduced, fraction = reduce_map(C, bin_edges(T, R, config.grading))
        lags = lag_profile(C, bin_edges(T - 1, R, config.grading))
        plain, corrected, s2 = noise_summary(C)
    low, high = config.temperature
    scalars = np.stack([
        np.nan_to_num(plain, nan=0.0),
        np.nan_to_num(corrected, nan=0.0),
        np.isnan(corrected).astype(np.float64),
        np.log10(np.maximum(np.nan_to_num(s2, nan=_NOISE_FLOOR), _NOISE_FLOOR)),
        (2 * np.asarray(temperature, dtype=np.float64) - low - high) / (high - low),
    ], axis=1)
    if config.age is not None:
        young, old = config.age
        ages = np.zeros(len(C)) if age is None else np.asarray(age, dtype=np.float64)
        scalars = np.concatenate([scalars, ((2 * ages - young - old) / (old - young))[:, None]],
                                 axis=1)
    x = np.concatenate([reduced.reshape(len(C), -1), fraction, lags, scalars], axis=1)
    return x.astype(np.float32)
