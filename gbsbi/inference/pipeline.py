"""``gbsbi train`` as a function: bank and experimental maps in, a model directory out.

:func:`gbsbi.inference.run.prepare` checks the inputs, reduces the bank and fits the Phi
surrogate; the estimator's trainer (:data:`TRAINERS`) builds its network, trains it through the
loop (checkpoint per epoch, resumable) and writes the model directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from gbsbi.inference.config import Architecture, TrainConfig
from gbsbi.inference.model import TrainedModel
from gbsbi.inference.npe.config import NpeConfig
from gbsbi.inference.npe.train import train_npe
from gbsbi.inference.point.config import PointConfig
from gbsbi.inference.point.train import train_point
from gbsbi.inference.run import prepare

#: Each estimator's trainer, by its kind: ``(run, log=, show_progress=) -> TrainedModel``.
TRAINERS: dict[str, Callable[..., TrainedModel]] = {"npe": train_npe, "point": train_point}


def train_model(
    bank: str | os.PathLike,
    out: str | os.PathLike,
    training: TrainConfig,
    estimator: NpeConfig | PointConfig | None = None,
    *,
    experimental: str | os.PathLike | None = None,
    architecture: Architecture | None = None,
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    cache: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
    show_progress: bool | None = None,
    threads: int | None = None,
) -> TrainedModel:
    """Train an estimator on a bank and write its model directory.

    Args:
        bank: a simulation bank, ideally simulated as measured (``--measurement fast``).
        out: the model directory.
        training: the training settings (the domain weights among them); for a point
            estimator, those of its vanilla stage.
        estimator: the posterior estimator's settings (default :class:`NpeConfig`) or the
            point estimator's (:class:`PointConfig`, its later stages included).
        experimental: a maps file of unlabelled experimental maps for the adaptation; needed
            when a weight is positive.
        architecture: the shared networks (default :class:`Architecture`).
        device: ``auto``, ``cpu`` or ``cuda``.
        resume: continue an interrupted run in ``out``.
        overwrite: replace what ``out`` holds.
        cache: folder for the bank's reduced inputs (default: the user's cache folder,
            :func:`gbsbi.inference.data.default_cache`), or None.
        log: where messages go.
        show_progress: progress bars (None: a bar on a terminal, lines in a log).
        threads: torch's CPU threads (None: the cores other processes leave free, looked at
            every epoch).
    """
    estimator = estimator or NpeConfig()
    run = prepare(bank, out, training, estimator, experimental=experimental,
                  architecture=architecture, device=device, resume=resume,
                  overwrite=overwrite, cache=cache, log=log, show_progress=show_progress,
                  threads=threads)
    return TRAINERS[estimator.kind](run, log=log, show_progress=show_progress)
