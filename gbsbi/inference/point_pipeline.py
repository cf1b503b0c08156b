"""``gbsbi train --estimator point``: the paper's point estimator from the checked inputs of
:func:`gbsbi.inference.pipeline.prepare` (same bank inputs, experimental maps and Phi
surrogate as the posterior estimator) to a model directory.

The steps: build the regressor (its embedding standardised with the bank's statistics, as
the flow's is), train the vanilla stage and, with experimental maps, the adaptation stage
(checkpoint per epoch, resumable), fine-tune one head per ``group`` of the maps where asked,
write the model directory with a head file per group.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gbsbi.inference.data import ScanInputs
from gbsbi.inference.model import TrainedModel, build_networks, save_model
from gbsbi.inference.pipeline import CHECKPOINT, Run, epoch_bar
from gbsbi.inference.point_training import FineTuneConfig, fine_tune, fit
from gbsbi.inference.regressor import MLPHead, PointRegressor
from gbsbi.inference.surrogate import PhiSurrogate
from gbsbi.inference.training import TrainingSet

STAGES = ("vanilla", "adaptation")


def train_point(
    run: Run, *, resume: bool, log: Callable[[str], None], show_progress: bool | None
) -> TrainedModel:
    """Train the point estimator of ``run.spec`` and write its model directory."""
    spec, point = run.spec, run.spec.point
    x, u = torch.as_tensor(run.data.x), torch.as_tensor(run.data.u)
    torch.manual_seed(spec.training.seed)
    regressor, _ = build_networks(spec)
    regressor.embedding.set_standardisation(x.mean(0), x.std(0))
    stages = point.stages(spec.training)
    with epoch_bar(sum(s.epochs for s in stages), show_progress, "val_loss") as bar:
        history = fit(regressor, TrainingSet(x, u), stages, experimental=run.experimental,
                      surrogate=run.surrogate, device=run.device, checkpoint=run.out / CHECKPOINT,
                      settings=run.settings, resume=resume, progress=bar)
    regressor.cpu()
    surrogate = run.surrogate.cpu()
    for k, name in enumerate(STAGES[: len(stages)]):
        records = [r for r in history if r["stage"] == k]
        best = min(records, key=lambda r: r["val_loss"])
        log(f"{name}: {len(records)} epochs, best validation MSE {best['val_mse']:.4f} "
            f"(epoch {best['epoch']}), {sum(r['maps_per_s'] for r in records) / len(records):.0f}"
            " maps/s")
    heads, tuning = {}, {}
    if point.fine_tune is not None:
        heads, tuning = fine_tune_groups(regressor, run.scans, point.fine_tune, surrogate,
                                         spec.training.seed, log)
    provenance = {**run.provenance(), "fine_tuning": tuning}
    model = save_model(run.out, spec, regressor, surrogate, provenance, history, heads)
    (run.out / CHECKPOINT).unlink(missing_ok=True)
    log(f"wrote {run.out}: point estimator" + (f" with {len(heads)} group heads" if heads else ""))
    return model


def fine_tune_groups(
    regressor: PointRegressor,
    scans: ScanInputs,
    config: FineTuneConfig,
    surrogate: PhiSurrogate,
    seed: int,
    log: Callable[[str], None],
) -> tuple[dict[str, MLPHead], dict[str, dict]]:
    """A fine-tuned head per group of the maps, in the order the groups first appear.

    Returns:
        The heads, and per group its number of maps and Phi term before and after.
    """
    groups = list(dict.fromkeys(map(str, scans.maps.group)))
    x_e = torch.as_tensor(scans.x)
    heads, figures = {}, {}
    for group in groups:
        pick = torch.as_tensor(scans.maps.group.astype(str) == group)
        heads[group], steps = fine_tune(regressor, x_e[pick], config, surrogate, seed)
        figures[group] = {"n": int(pick.sum()), "phi_before": steps[0]["phi"],
                          "phi_after": steps[-1]["phi"]}
        if len(steps) == 1:
            log(f"warning: group {group!r} has no map with a defined corrected Phi; its head "
                "is the adapted model's")
        else:
            log(f"fine-tuned {group!r} on {figures[group]['n']} maps: Phi term "
                f"{steps[0]['phi']:.4f} -> {steps[-1]['phi']:.4f}")
    return heads, figures
