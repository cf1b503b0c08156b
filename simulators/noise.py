r"""Fast noise model of the two-time estimator, for simulating banks as measured.

The exact model (``simulators.measurement``) draws N_pix speckle pixels; this one draws the
pixel sums directly, at the cost of a few (T, T) element-wise passes and one (T, r) x (r, T)
matrix product per map.

Variance of one element (t1 != t2). Per pixel, with mean counts mu_i = nbar b(t_i), signal
s = beta |F12|^2 = C12 - 1 and M = 1 / beta speckle modes, the intensity moments up to
E[I1^2 I2^2] follow from the cyclic-sum (Wick) cumulants of a complex Gaussian field,
kappa_r(I) = beta^(r-1) x (sum over the cyclic orders of the product of F's), and the Poisson
factorial moments E[n (n - 1) | I] = (mu I)^2. The delta method for the ratio of pixel means then
gives, with a_i = 1 / mu_i,

.. math::

    N_{pix} \operatorname{var} C_{12} = a_1 a_2 (1 + s) + (a_1 + a_2)(\beta + 2\beta s - s^2)
        + s^2 + \beta^2 + 4\beta^2 s - 4\beta s^2 + 2 s^3,

shot noise (1 + s) / (N_pix mu1 mu2) at low counts, speckle noise of order beta^2 / N_pix at
high counts (the Wishart value beta^2 + s^2 as beta -> 0).

Fast model. Treat the pixel count vectors n_p as Gaussian pseudo-pixels with the exact mean mu
and covariance Sigma = (mu mu^T) o S + diag(mu), S = C - 1 off the diagonal and beta on it (the
intensity covariance). The pixel sums s = sum_p n_p and the Gram G = sum_p n_p n_p^T are then,
to first order in 1/N_pix,

.. math::

    s_t \sim \operatorname{Poisson}\!\big(N \mu_t [1 + (R_S z)_t / \sqrt{N}]\big), \qquad
    G = s s^T / N + N \Sigma + \sqrt{N / 2}\; \ell \ell^T \circ (A + A^T),

    A = R Z R^T + (\mu \mu^T) \circ \sqrt{\Delta} \circ W,

with R R^T = Sigma and R_S R_S^T = S, z, Z, W standard normal. The sums carry the speckle
covariance S and Poisson shot noise, so that the estimator's non-linearity at low counts is
right and a frame without a photon gives NaN, as in the exact model. R Z R^T is the
first-order Wishart fluctuation of the Gaussian pseudo-pixels (its law depends on R only through
R R^T): shot x shot, shot x speckle (rows correlated through S: most of the noise's large-scale
structure) and speckle x speckle (correlated over the speckle correlation time; it sets the
spread of Phi above ~0.3 photons per pixel per frame). Gaussian counts lack the third and fourth
cumulants of Poisson-speckle counts; the white W term adds back the variance they miss, the
exact value above minus the Gaussian model's sigma1 sigma2 + s^2 + s^2 (sigma1 + sigma2 + 2s),
sigma_i = beta + a_i:

.. math::

    \Delta = s \left[ a_1 a_2 + 2 (a_1 + a_2)(\beta - s) + 2\beta (2\beta - 3 s) \right]_+

(its leading part, s / (mu1 mu2), is exactly uncorrelated with every other term). The
fluctuation is scaled by l_t = sqrt(s_t / (N mu_t)) so that shot noise follows the counts
actually realised, as Poisson counts do (without it the variance comes out 5 % high at 100
photons per frame). The map is C = N G / (s s^T).

Square roots without factorising Sigma. S = beta |F|^2 is smooth and of low numerical rank (about
10-30 of 128 frames over the default prior), so a pivoted Cholesky factor L (T x r) with
S = L L^T + E, stopped once every residual variance diag(E) is below ``FACTOR_TOL`` x beta, costs
O(T r^2). The residual's off-diagonal part (below that bound, about 0.005 beta rms) is dropped and
its diagonal e kept, so every variance stays exact:

.. math::

    S \approx L L^T + \operatorname{diag}(e), \qquad
    \Sigma \approx W W^T + \operatorname{diag}(d^2), \quad W = \mu \circ L, \quad
    d^2 = \mu + \mu^2 e,

so R = [W, diag(d)] (T x (r + T)) and R_S = [L, diag(sqrt(e))]. With Y = Z + Z^T (symmetric:
N(0, 2) off the diagonal, N(0, 4) on it), the symmetrised fluctuation is

.. math::

    A + A^T = W Q + (W Q)^T + \sqrt{d d^T \circ d d^T + (\mu\mu^T)^2 \circ \Delta}\, \circ Y_3,
    \qquad Q = \tfrac12 Y_{11} W^T + Y_{12} \operatorname{diag}(d),

where the two white terms (d_i d_j Y22_ij and the W term, independent with the same variance
pattern) are one symmetric Y_3 scaled element-wise: O(T^2 r) work, and only the upper triangle
of Y_3 (T (T + 1) / 2 normals) is drawn.

Validation (studies/validate_noise_model.py, nbar in [0.01, 1], N_pix in [1e3, 1e5], 64 frames):
the per-element variance within 3 % of the exact model's (mean over elements; within 5 % in
every lag band), the plain Phi's distribution matching (medians within 0.01, KS p-values all
above 0.0017). Speed: see studies/bench_simulator.py (measured banks against noiseless ones).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from simulators.measurement import beam_intensity

#: Largest residual variance of the low-rank speckle factor, relative to beta (module docstring).
FACTOR_TOL = 0.05
#: Maps per pass of the element-wise work: the few (chunk, T, T) arrays stay in the CPU cache.
_CHUNK = 8


def _per_pixel_variance(S: np.ndarray, a1: np.ndarray, a2: np.ndarray, beta: float) -> np.ndarray:
    """N var C12 of the exact model (module docstring), shape (..., T, T)."""
    return (
        a1 * a2 * (1 + S)
        + (a1 + a2) * (beta + 2 * beta * S - S**2)
        + S**2 * (1 - 4 * beta + 2 * S)
        + beta**2 * (1 + 4 * S)
    )


def _prepare(
    C_noiseless: np.ndarray, nbar: float | np.ndarray, beta: float, dtype: type
) -> tuple[np.ndarray, np.ndarray]:
    """S = C - 1 with beta on its diagonal, shape (..., T, T), and mu broadcast to (..., T)."""
    S = np.array(C_noiseless, dtype=dtype) - dtype(1)
    T = S.shape[-1]
    S[..., np.arange(T), np.arange(T)] = np.asarray(beta, dtype=dtype)[..., None]
    return S, np.broadcast_to(np.asarray(nbar, dtype=np.float64), S.shape[:-1])


def estimator_variance(
    C_noiseless: np.ndarray,
    nbar: float | np.ndarray,
    n_pix: float | np.ndarray,
    beta: float,
) -> np.ndarray:
    """Delta-method variance of each element of the two-time estimator (module docstring).

    Args:
        C_noiseless: noiseless maps 1 + beta |F|^2, shape (..., T, T).
        nbar: mean counts per pixel per frame, scalar or broadcastable to (..., T) (per-map values
            as shape (n, 1)).
        n_pix: number of live pixels, scalar or shape (...).
        beta: contrast.

    Returns:
        var C(t1, t2), shape (..., T, T), float64; NaN on the diagonal (the Poisson self-term,
        excluded from every statistic).
    """
    S, mu = _prepare(C_noiseless, nbar, beta, np.float64)
    a = 1.0 / mu
    var = _per_pixel_variance(S, a[..., :, None], a[..., None, :], beta)
    var /= np.asarray(n_pix, dtype=np.float64)[..., None, None]
    T = var.shape[-1]
    var[..., np.arange(T), np.arange(T)] = np.nan
    return var


def _check_contrast(C: np.ndarray, beta: np.ndarray) -> None:
    """A map's own contrast (its largest C - 1) must not exceed the beta it is measured with."""
    own = C.max(axis=(-2, -1)).astype(np.float64) - 1.0
    bad = np.flatnonzero(own > beta * (1 + 1e-4) + 1e-6)
    if bad.size:
        k = int(bad[0])
        raise ValueError(
            f"beta = {beta[k]:.4g} is below the contrast of map {k} (its largest C - 1 is "
            f"{own[k]:.4g}): beta must be the diagonal excess of the noiseless map 1 + beta |F|^2"
        )


def speckle_factor(
    C_noiseless: np.ndarray, beta: np.ndarray, tol: float = FACTOR_TOL
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Low-rank factor of the intensity covariance S by pivoted Cholesky (module docstring).

    S is C - 1 off the diagonal and beta on it; the factor stops, map by map, once every
    residual variance is at most ``tol`` x beta.

    Args:
        C_noiseless: noiseless maps 1 + beta |F|^2, shape (n, T, T), float32.
        beta: contrast of each map, shape (n,).
        tol: largest residual variance relative to beta.

    Returns:
        ``(L, e, rank)``: the factor's columns as rows, shape (n, r, T), float32, with
        S ~= L^T L + diag(e) (rows beyond a map's rank are zero); the residual variances e,
        shape (n, T), float32, >= 0; each map's rank, shape (n,).
    """
    n, T = C_noiseless.shape[0], C_noiseless.shape[-1]
    maps = np.arange(n)
    beta32 = beta.astype(np.float32)
    residual = np.repeat(beta32[:, None], T, axis=1)
    factor = np.zeros((n, T, T), dtype=np.float32)  # calloc: pages are touched row by row
    rank = np.zeros(n, dtype=np.int64)
    r = 0
    while r < T:
        pivot = residual.argmax(axis=1)
        value = residual[maps, pivot]
        active = value > tol * beta32
        if not active.any():
            break
        column = C_noiseless[maps, :, pivot] - np.float32(1)
        column[maps, pivot] = beta32
        if r:
            column -= np.matmul(factor[maps, :r, pivot][:, None, :], factor[:, :r])[:, 0]
        scale = np.where(active, 1 / np.sqrt(np.where(active, value, 1)), 0).astype(np.float32)
        column *= scale[:, None]
        factor[:, r] = column
        residual -= column * column
        rank += active
        r += 1
    return factor[:, :r], np.maximum(residual, 0), rank


@lru_cache(maxsize=8)
def _symmetric_layout(T: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each element (i, j) of a (T, T) matrix is in its packed upper triangle (diagonal
    included), flat (T * T,); and the standard deviation of Y = Z + Z^T for Z of unit normals,
    sqrt 2 off the diagonal and 2 on it, shape (T, T)."""
    i, j = np.triu_indices(T)
    packed = np.empty((T, T), dtype=np.intp)
    packed[i, j] = packed[j, i] = np.arange(i.size)
    spread = np.full((T, T), np.sqrt(2), dtype=np.float32)
    spread[np.arange(T), np.arange(T)] = 2
    return packed.ravel(), spread


def _symmetric_normal(rng: np.random.Generator, m: int, T: int) -> np.ndarray:
    """m symmetric (T, T) matrices of unit normals drawn as their upper triangles, float32."""
    z = rng.standard_normal((m, T * (T + 1) // 2), dtype=np.float32)
    return np.take(z, _symmetric_layout(T)[0], axis=1).reshape(m, T, T)


class _Chunk:
    """The noise model's fixed parts for a few maps (m of them): S, mu, the speckle factor and
    the white term's standard deviation, each (m, T, T) or (m, T)."""

    def __init__(self, C0: np.ndarray, mu: np.ndarray, beta: np.ndarray, factor: np.ndarray,
                 residual: np.ndarray) -> None:
        f32 = np.float32
        T = C0.shape[-1]
        diagonal = np.arange(T)
        self.mu, self.factor, self.residual = mu.astype(f32), factor, residual
        S = C0 - f32(1)
        S[:, diagonal, diagonal] = beta.astype(f32)[:, None]
        self.S = S
        b = beta.astype(f32)[:, None, None]
        mu_i, mu_j = self.mu[:, :, None], self.mu[:, None, :]
        # Delta (mu mu^T)^2 = mm S [1 + 2 (mu_i + mu_j)(beta - S) + 2 mm beta (2 beta - 3 S)]_+
        #                   = mm S [A - B S]_+, A = (1 + 2 beta mu_i)(1 + 2 beta mu_j),
        #                                        B = 2 (mu_i + mu_j) + 6 beta mm
        mm = mu_i * mu_j
        a = f32(1) + f32(2) * beta.astype(f32)[:, None] * self.mu
        white = mu_i + mu_j
        white *= f32(2)
        scratch = mm * (f32(6) * b)
        white += scratch
        white *= S
        np.multiply(a[:, :, None], a[:, None, :], out=scratch)
        np.subtract(scratch, white, out=white)
        white *= S
        np.maximum(white, 0, out=white)
        white *= mm
        self.d2 = self.mu + self.mu**2 * residual  # the diagonal part of Sigma
        np.multiply(self.d2[:, :, None], self.d2[:, None, :], out=scratch)
        white += scratch
        np.sqrt(white, out=white)
        white *= _symmetric_layout(T)[1]
        self.white = white

    def draw_sums(self, n: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Pixel sums s, shape (m, T), float32, of n pixels (n shape (m,))."""
        m, r, T = self.factor.shape
        z = rng.standard_normal((m, r + T), dtype=np.float32)
        speckle = np.matmul(z[:, None, :r], self.factor)[:, 0]
        speckle += np.sqrt(self.residual) * z[:, r:]
        speckle /= np.sqrt(n).astype(np.float32)[:, None]
        speckle += np.float32(1)
        rate = n[:, None] * self.mu * np.maximum(speckle, 0)
        return rng.poisson(rate).astype(np.float32)

    def excess(self, u: np.ndarray, v: np.ndarray, w: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        """u_i u_j S + diag(w) + v_i v_j (A + A^T), shape (m, T, T), float32 (module docstring).

        With u = sqrt(N) mu, v = (N / 2)^(1/4) l and w = N mu this is G - s s^T / N; with the
        same divided by s (and u, w by s again) it is C - 1.
        """
        f32 = np.float32
        m, r, T = self.factor.shape
        out = _symmetric_normal(rng, m, T)
        out *= self.white
        out *= _outer(v)  # an outer product, not two scalings: exactly symmetric
        if r:
            y11 = _symmetric_normal(rng, m, r) * _symmetric_layout(r)[1]
            q = rng.standard_normal((m, r, T), dtype=f32)
            q *= (f32(np.sqrt(2)) * np.sqrt(self.d2) * v)[:, None, :]
            wt = self.factor * (self.mu * v)[:, None, :]  # W^T with v folded in, (m, r, T)
            q += f32(0.5) * np.matmul(y11, wt)
            p = np.matmul(np.swapaxes(wt, 1, 2), q)
            out += p + np.swapaxes(p, 1, 2)  # exactly symmetric: a + b == b + a
        shot = _outer(u)
        shot *= self.S
        out += shot
        out[:, np.arange(T), np.arange(T)] += w
        return out


def noisy_maps(
    C_noiseless: np.ndarray,
    nbar: float | np.ndarray,
    n_pix: float | np.ndarray,
    beta: float | np.ndarray,
    rng: np.random.Generator,
    beam_rms: float = 0.0,
    halves: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy two-time maps as the estimator would give them, without simulating pixels.

    Memory: two float32 arrays of the batch's size beside the input.

    Args:
        C_noiseless: noiseless maps 1 + beta |F|^2, shape (..., T, T).
        nbar: mean counts per pixel per frame, scalar or broadcastable to (..., T) (per-map values
            as shape (n, 1)); 0 on a frame marks it dropped (NaN row and column).
        n_pix: number of live pixels N_pix, scalar or shape (...).
        beta: contrast, the diagonal excess of the noiseless map, scalar or shape (...); a beta
            below a map's own contrast (its largest C - 1) is a ValueError.
        rng: the only source of randomness.
        beam_rms: relative rms of a lognormal beam intensity b(t), drawn per map and frame.
        halves: also return the maps of two disjoint pixel halves (N_pix // 2 and the rest).

    Returns:
        Noisy maps C, shape (..., T, T), float32; with ``halves``, ``(C, C_a, C_b)``.
    """
    C0 = np.asarray(C_noiseless, dtype=np.float32)
    batch, T = C0.shape[:-2], C0.shape[-1]
    C0 = C0.reshape(-1, T, T)
    count = C0.shape[0]
    mu = np.broadcast_to(np.asarray(nbar, dtype=np.float64), (*batch, T)).reshape(count, T)
    n = np.broadcast_to(np.asarray(n_pix, dtype=np.float64), batch).reshape(count)
    beta = np.broadcast_to(np.asarray(beta, dtype=np.float64), batch).reshape(count)
    _check_contrast(C0, beta)
    mu = mu * beam_intensity(beam_rms, mu.shape, rng)
    dropped = mu <= 0
    mu = np.where(dropped, 1.0, mu)
    factor, residual, rank = speckle_factor(C0, beta)
    outputs = [np.empty_like(C0) for _ in range(3 if halves else 1)]
    order = np.argsort(rank, kind="stable")  # chunks of similar rank: less padding
    for lo in range(0, count, _CHUNK):
        part = order[lo:lo + _CHUNK]
        chunk = _Chunk(C0[part], mu[part], beta[part], factor[part, :rank[part].max()],
                       residual[part])
        drawn = _draw(chunk, n[part], dropped[part], halves, rng)
        for out, value in zip(outputs, drawn, strict=True):
            out[part] = value
    shaped = [out.reshape(*batch, T, T) for out in outputs]
    return shaped[0] if not halves else tuple(shaped)


def _draw(chunk: _Chunk, n: np.ndarray, dropped: np.ndarray, halves: bool,
          rng: np.random.Generator) -> list[np.ndarray]:
    """The noisy maps of one chunk: [C] or [C, C_a, C_b], each (m, T, T), float32."""
    f32 = np.float32
    if not halves:
        sums = chunk.draw_sums(n, rng)
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = 1 / sums
            level = np.sqrt(sums / (n[:, None] * chunk.mu))
            u = (n[:, None] * chunk.mu * inverse).astype(f32)
            v = (np.sqrt(n * np.sqrt(n / 2))[:, None] * level * inverse).astype(f32)
            w = (n[:, None] ** 2 * chunk.mu * inverse**2).astype(f32)
            C = chunk.excess(u, v, w, rng)
        C += f32(1)
        return [_blank(C, dropped | (sums <= 0))]
    parts = []
    for n_h in (np.floor(n / 2), n - np.floor(n / 2)):
        sums = chunk.draw_sums(n_h, rng)
        level = np.sqrt(sums / (n_h[:, None] * chunk.mu))
        u = (np.sqrt(n_h)[:, None] * chunk.mu).astype(f32)
        v = ((n_h[:, None] / 2) ** 0.25 * level).astype(f32)
        w = (n_h[:, None] * chunk.mu).astype(f32)
        gram = chunk.excess(u, v, w, rng)
        gram += _outer(sums) / n_h.astype(f32)[:, None, None]
        parts.append((sums, gram, n_h))
    (s_a, g_a, n_a), (s_b, g_b, n_b) = parts
    return [_estimate(s, g, n_s, dropped)
            for s, g, n_s in ((s_a + s_b, g_a + g_b, n), (s_a, g_a, n_a), (s_b, g_b, n_b))]


def _outer(x: np.ndarray) -> np.ndarray:
    return x[..., :, None] * x[..., None, :]


def _estimate(sums: np.ndarray, gram: np.ndarray, n: np.ndarray,
              dropped: np.ndarray) -> np.ndarray:
    """C = n G / (s s^T), NaN in the rows and columns of dropped or empty frames."""
    with np.errstate(invalid="ignore", divide="ignore"):
        C = gram / _outer(sums)
    C *= n.astype(np.float32)[:, None, None]
    return _blank(C, dropped | (sums <= 0))


def _blank(C: np.ndarray, empty: np.ndarray) -> np.ndarray:
    """NaN rows and columns where ``empty`` (shape (m, T)) is true, in place."""
    if empty.any():
        C[empty[:, :, None] | empty[:, None, :]] = np.nan
    return C
