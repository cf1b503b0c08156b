"""The two-time correlator: photon-count frames to two-time maps C(t1, t2) per ROI.

- :mod:`~gbsbi.correlator.roi`: regions of interest (q-rings, label masks) and their
  checkerboard halves;
- :mod:`~gbsbi.correlator.frames`: frame sources (``.npy`` stacks, Eiger master HDF5 files) read
  in blocks of whole frames;
- :mod:`~gbsbi.correlator.store`: the ROI pixels' counts, pixel-major, from one pass over the
  frames;
- :mod:`~gbsbi.correlator.correlate`: the chunked float64 Gram-matrix correlator, ROI by ROI.
"""

from gbsbi.correlator.correlate import (
    BAND_BYTES,
    MAP_NAMES,
    RoiMaps,
    TwoTime,
    auto_chunk_pixels,
    correlate,
    correlate_rois,
    dropped_frames,
    mean_counts,
)
from gbsbi.correlator.frames import DetectorInfo, EigerFrames, NpyFrames, open_frames
from gbsbi.correlator.roi import Geometry, Roi, checkerboard, label_rois, q_ring

__all__ = [
    "BAND_BYTES",
    "MAP_NAMES",
    "DetectorInfo",
    "EigerFrames",
    "Geometry",
    "NpyFrames",
    "Roi",
    "RoiMaps",
    "TwoTime",
    "auto_chunk_pixels",
    "checkerboard",
    "correlate",
    "correlate_rois",
    "dropped_frames",
    "label_rois",
    "mean_counts",
    "open_frames",
    "q_ring",
]
