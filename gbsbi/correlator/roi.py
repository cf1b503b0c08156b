r"""Regions of interest (ROIs) on the detector: q-rings and label masks.

An ROI is a set of detector pixels p over which the two-time estimator averages; all share one
momentum transfer q. Each ROI's pixels are also split into two disjoint halves (a fixed
checkerboard), so that the correlator can return two half-maps with independent photon noise
for the split-half Phi (docs/phi.md#split-half-phi).

Geometry: a flat detector normal to the direct beam (transmission SAXS). A pixel at distance
r from the beam centre on a detector at distance L sees the scattering angle 2 theta with
tan(2 theta) = r / L, and

.. math::

    q = \frac{4 \pi}{\lambda} \sin\theta \qquad [\mathrm{nm}^{-1},\ \lambda \text{ in nm}].

Pixel coordinates are zero-based (row, col) with the centre of pixel (0, 0) at (0, 0).
Grazing-incidence corrections (refraction, q_z) are not applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gbsbi.errors import GbsbiError


@dataclass(frozen=True)
class Geometry:
    """Scattering geometry of a flat detector normal to the beam.

    Attributes:
        center: beam centre (row, col) in pixels, zero-based.
        pixel_size: pixel edge length in micrometres (square pixels).
        distance: sample-detector distance L in m.
        wavelength: X-ray wavelength lambda in Angstrom.
    """

    center: tuple[float, float]
    pixel_size: float
    distance: float
    wavelength: float

    def __post_init__(self) -> None:
        for name in ("pixel_size", "distance", "wavelength"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise GbsbiError(f"geometry: {name} must be a positive number, got {value}")
        if len(self.center) != 2 or not np.all(np.isfinite(self.center)):
            raise GbsbiError(f"geometry: center must be (row, col), got {self.center}")

    def q_map(self, shape: tuple[int, int]) -> np.ndarray:
        """Momentum transfer of every pixel.

        Args:
            shape: detector shape (rows, cols).

        Returns:
            q in nm^-1, shape (rows, cols), float64.
        """
        rows, cols = np.indices(shape, dtype=np.float64)
        r = np.hypot(rows - self.center[0], cols - self.center[1]) * self.pixel_size * 1e-6
        two_theta = np.arctan2(r, self.distance)
        return 4.0 * np.pi / (self.wavelength * 0.1) * np.sin(two_theta / 2.0)


@dataclass(frozen=True)
class Roi:
    """One region of interest.

    Attributes:
        name: identifier written as the map's ``scan`` entry.
        shape: detector shape (rows, cols) the pixel indices refer to.
        pixels: flat (row-major) indices of the ROI's pixels, sorted, shape (N,), int64.
        half: which half each pixel belongs to (False: half a, True: half b), shape (N,).
        q: mean momentum transfer of the pixels in nm^-1 (NaN when no geometry is known).
    """

    name: str
    shape: tuple[int, int]
    pixels: np.ndarray
    half: np.ndarray
    q: float

    def __post_init__(self) -> None:
        pixels = np.asarray(self.pixels, dtype=np.int64)
        half = np.asarray(self.half, dtype=bool)
        if pixels.ndim != 1 or half.shape != pixels.shape:
            raise GbsbiError(f"ROI {self.name}: pixels and half must be 1-d of one length")
        if pixels.size and (np.any(np.diff(pixels) <= 0) or pixels[0] < 0
                            or pixels[-1] >= self.shape[0] * self.shape[1]):
            raise GbsbiError(f"ROI {self.name}: pixel indices must be sorted, unique, in range")
        if min(np.count_nonzero(~half), np.count_nonzero(half)) == 0:
            raise GbsbiError(
                f"ROI {self.name} is empty or too small: {pixels.size} pixels, "
                "each checkerboard half needs at least one"
            )
        object.__setattr__(self, "pixels", pixels)
        object.__setattr__(self, "half", half)
        object.__setattr__(self, "shape", (int(self.shape[0]), int(self.shape[1])))


def checkerboard(pixels: np.ndarray, shape: tuple[int, int], block: int = 1) -> np.ndarray:
    """Assign pixels to two halves by a checkerboard of square blocks.

    Args:
        pixels: flat pixel indices, shape (N,).
        shape: detector shape (rows, cols).
        block: block edge in pixels; use about the speckle size so that the halves sample
            different speckles (1: alternate pixels).

    Returns:
        True for half b, shape (N,), bool.
    """
    if block < 1:
        raise GbsbiError(f"checkerboard block must be >= 1 pixel, got {block}")
    row, col = np.divmod(np.asarray(pixels, dtype=np.int64), shape[1])
    return ((row // block + col // block) % 2).astype(bool)


def _valid(mask: np.ndarray | None, shape: tuple[int, int], what: str) -> np.ndarray:
    """The boolean valid-pixel mask, checked against the detector shape."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise GbsbiError(f"{what}: mask has shape {mask.shape}, the detector {tuple(shape)}")
    return mask.astype(bool)


def q_ring(
    geometry: Geometry,
    shape: tuple[int, int],
    q_min: float,
    q_max: float,
    mask: np.ndarray | None = None,
    block: int = 1,
) -> Roi:
    """The ring of pixels with q_min <= q < q_max.

    Args:
        geometry: the scattering geometry.
        shape: detector shape (rows, cols).
        q_min: inner edge in nm^-1.
        q_max: outer edge in nm^-1.
        mask: valid pixels (True: use), shape (rows, cols), or None for all.
        block: checkerboard block edge for the split halves, pixels.

    Returns:
        The ROI, named ``q{q_min:.4g}-{q_max:.4g}``, with q the mean over its pixels.
    """
    name = f"q{q_min:.4g}-{q_max:.4g}"
    if not 0 <= q_min < q_max:
        raise GbsbiError(f"q-ring {name}: need 0 <= q_min < q_max (nm^-1)")
    q = geometry.q_map(shape)
    inside = (q >= q_min) & (q < q_max) & _valid(mask, shape, f"q-ring {name}")
    pixels = np.flatnonzero(inside)
    if pixels.size == 0:
        raise GbsbiError(
            f"q-ring {name} nm^-1 is empty on the {shape[0]}x{shape[1]} detector "
            f"(q spans {q.min():.4g}-{q.max():.4g} nm^-1 with this geometry and mask)"
        )
    half = checkerboard(pixels, shape, block)
    return Roi(name, shape, pixels, half, float(q.flat[pixels].mean()))


def label_rois(
    labels: np.ndarray,
    mask: np.ndarray | None = None,
    geometry: Geometry | None = None,
    block: int = 1,
) -> list[Roi]:
    """One ROI per positive label of an integer label image.

    Args:
        labels: integer labels, shape (rows, cols); 0 excludes a pixel, each label k > 0 is one
            ROI named ``label{k}``.
        mask: valid pixels (True: use), shape (rows, cols), or None for all.
        geometry: the scattering geometry for each ROI's mean q, or None (q = NaN).
        block: checkerboard block edge for the split halves, pixels.

    Returns:
        The ROIs in increasing label order.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise GbsbiError(f"label mask must be 2-d (rows, cols), found shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise GbsbiError(f"label mask must hold integers, found dtype {labels.dtype}")
    if np.any(labels < 0):
        raise GbsbiError("label mask holds negative labels; use 0 to exclude a pixel")
    shape = labels.shape
    flat = np.where(_valid(mask, shape, "label mask"), labels, 0).ravel()
    q = geometry.q_map(shape).ravel() if geometry is not None else None
    rois = []
    for value in np.unique(labels[labels > 0]):
        pixels = np.flatnonzero(flat == value)
        if pixels.size == 0:
            raise GbsbiError(f"label {value} has no valid pixel left after the mask")
        mean_q = float(q[pixels].mean()) if q is not None else float("nan")
        half = checkerboard(pixels, shape, block)
        rois.append(Roi(f"label{value}", shape, pixels, half, mean_q))
    if not rois:
        raise GbsbiError("label mask is empty: no pixel has a label > 0")
    return rois
