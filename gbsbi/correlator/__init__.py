"""The two-time correlator: photon-count frames to two-time maps C(t1, t2) per ROI.

- :mod:`~gbsbi.correlator.roi`: regions of interest (q-rings, label masks) and their
  checkerboard halves;
- :mod:`~gbsbi.correlator.frames`: frame sources (``.npy`` stacks, Eiger master HDF5 files) read
  one band of detector rows at a time;
- :mod:`~gbsbi.correlator.correlate`: the chunked float64 Gram-matrix correlator.
"""

from gbsbi.correlator.correlate import BAND_BYTES, TwoTime, auto_chunk_pixels, correlate
from gbsbi.correlator.frames import DetectorInfo, EigerFrames, NpyFrames, open_frames
from gbsbi.correlator.roi import Geometry, Roi, checkerboard, label_rois, q_ring

__all__ = [
    "BAND_BYTES",
    "DetectorInfo",
    "EigerFrames",
    "Geometry",
    "NpyFrames",
    "Roi",
    "TwoTime",
    "auto_chunk_pixels",
    "checkerboard",
    "correlate",
    "label_rois",
    "open_frames",
    "q_ring",
]
