"""The record every layout reader returns: the maps of one file, still unread, and its conditions.

:class:`RawMaps` holds what one file stores; :func:`one_line` and :func:`check_dtype` are the
message and dtype checks the readers (:mod:`gbsbi.io.beamline`, :mod:`gbsbi.io.aps`) share.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gbsbi.errors import GbsbiError

if TYPE_CHECKING:  # the checks need no numpy at run time, so the command line starts light
    import numpy as np

#: Layouts of ``gbsbi import --format``; "auto" picks one by extension and HDF5 content.
FORMATS = ("auto", "npy", "txt", "aps", "aps-legacy", "pychx")


@dataclass(frozen=True)
class RawMaps:
    """The maps of one file, as stored, with the conditions the file records.

    Attributes:
        path: the file.
        layout: one of :data:`gbsbi.io.beamline.FORMATS` other than "auto".
        maps: m stored maps, each an array or HDF5 dataset of shape (T, T) (read with ``[()]``).
        labels: where each map lives, for messages (a dataset path), shape (m,).
        names: short name of each map for scan identifiers, shape (m,).
        q: q of each map in nm^-1, shape (m,), or None.
        temperature: temperature in K, or None.
        frame_time: time between stored frames in s, or None.
        why_no_q, why_no_temperature, why_no_frame_time: why a condition is None ("" if unknown).
        notes: what was read and converted, one line each.
        half_storage: the layout stores one triangle of each map.
    """

    path: Path
    layout: str
    maps: tuple
    labels: tuple[str, ...]
    names: tuple[str, ...]
    q: np.ndarray | None = None
    temperature: float | None = None
    frame_time: float | None = None
    why_no_q: str = ""
    why_no_temperature: str = ""
    why_no_frame_time: str = ""
    notes: tuple[str, ...] = ()
    half_storage: bool = False


def one_line(err: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(err).split()) or type(err).__name__


def check_dtype(path: Path, label: str, dtype: np.dtype) -> None:
    """Raise unless a map's dtype holds real numbers (integer, unsigned or float)."""
    if dtype.kind not in "iuf":
        what = {"b": "boolean", "c": "complex", "O": "object", "U": "text", "S": "text"}
        raise GbsbiError(
            f"{path}: {label}: wrong dtype {what.get(dtype.kind, str(dtype))} ({dtype}); "
            "a two-time map holds real numbers"
        )
