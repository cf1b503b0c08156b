"""The Phi of every map of a maps file, plain, noise-corrected and split-half, as a table
(``gbsbi phi``), read a bounded number of maps at a time."""

from __future__ import annotations

import csv
import os

import numpy as np

from gbsbi.io.atomic import atomic_path
from gbsbi.io.mapsfile import open_maps_file, scan_names
from gbsbi.summaries.phi import phi
from gbsbi.summaries.phi_noise import phi_corrected

#: Bytes of maps read at a time (float32): memory stays bounded for long maps.
READ_BYTES = 256 * 2**20
HEADER = ("scan", "T [K]", "q [nm^-1]", "Phi plain", "Phi corrected", "Phi split-half")


def phi_table(path: str | os.PathLike) -> list[tuple]:
    """One row per map: scan, T, q, plain, corrected and split-half Phi (NaN where the file
    has no half-maps)."""
    with open_maps_file(path) as reader:
        temperature = reader.values("temperature", finite=True, positive=True)
        q = reader.values("q", finite=True, positive=True)
        names = scan_names(reader.text("scan") if reader.has("scan") else None, reader.n)
        halves = reader.halves()
        plain, corrected, split = (np.full(reader.n, np.nan) for _ in range(3))
        step = max(1, READ_BYTES // (4 * reader.T * reader.T))
        for lo in range(0, reader.n, step):
            part = slice(lo, min(lo + step, reader.n))
            C = reader.maps(part)
            plain[part], corrected[part] = phi(C), phi_corrected(C)
            if halves:
                split[part] = phi(reader.maps(part, halves[0]), reader.maps(part, halves[1]))
    return [(str(name), temperature[k], q[k], plain[k], corrected[k], split[k])
            for k, name in enumerate(names)]


def format_phi_table(rows: list[tuple]) -> str:
    """The rows of :func:`phi_table` for the terminal."""
    width = max(len(HEADER[0]), *(len(r[0]) for r in rows))
    lines = [f"{HEADER[0]:<{width}}  " + "  ".join(f"{h:>14}" for h in HEADER[1:])]
    lines += [f"{row[0]:<{width}}  " + "  ".join(f"{v:>14.4g}" for v in row[1:]) for row in rows]
    return "\n".join(lines)


def write_phi_csv(path: str | os.PathLike, rows: list[tuple]) -> None:
    """The rows of :func:`phi_table` as CSV, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)
