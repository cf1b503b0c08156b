r"""The reference density of the misspecification tests: an unconditional flow over the
embedding f(x) of held-out simulations (docs/validation.md#misspecification).

The features f(x) of held-out simulations (the training run's validation split: never a
gradient step, used for early stopping only) are split in two. On the first part
(``fit_fraction``) an unconditional flow p(f) is fitted with sbi's ``MarginalTrainer``; on the
second, its log-densities l_j = log p(f_j) are the null distribution of a scan's log-density
(the p-values are :mod:`gbsbi.validation.misspecification`'s). How well p(f) fits is measured
once, at fitting time, by a C2ST between the null features and draws of p(f) (``c2st``, 0.5
is ideal).

Files, written into the model directory beside the model (the model's own hash does not
cover them; they record the hash of the model they were fitted for):

=========================  =====================================================
``misspecification.pt``    state_dict of p(f), reference features, log-densities
``misspecification.json``  settings, the model's hash, SHA-256 of the .pt, c2st
=========================  =====================================================
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gbsbi.errors import GbsbiError
from gbsbi.inference.model import TrainedModel, sha256
from gbsbi.io.atomic import atomic_path, write_atomic

FORMAT = "gbsbi-misspecification"
META, STATE = "misspecification.json", "misspecification.pt"
#: Fewest held-out simulations for a reference (fewer: the model gets none).
MIN_HELDOUT = 20


@dataclass(frozen=True)
class MisspecConfig:
    """How the reference density is fitted.

    Attributes:
        estimator: sbi's marginal flow (``maf``, ``nsf``, ...).
        hidden: hidden units of each transform.
        transforms: number of transforms.
        fit_fraction: share of the held-out simulations the density is fitted on; the rest
            gives the reference log-densities.
        alpha: significance level of the per-scan flag.
        max_epochs: the most epochs of sbi's trainer (it stops early on its own split, after
            ``patience`` epochs without improvement). The p-values are calibrated for any
            fitted density (the null log-densities come from the same density on simulations
            it never saw); a better fit only gives the test more power.
        patience: epochs without a better validation loss before sbi's trainer stops.
        seed: seeds the split and the fit.
    """

    estimator: str = "maf"
    hidden: int = 64
    transforms: int = 3
    fit_fraction: float = 0.6
    alpha: float = 0.05
    max_epochs: int = 100
    patience: int = 10
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class _NoTracker:
    """sbi's tracker protocol, keeping nothing (its default writes TensorBoard logs)."""

    log_dir = None

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        pass

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        pass

    def log_params(self, params: dict) -> None:
        pass

    def add_figure(self, name: str, figure: object, step: int | None = None) -> None:
        pass

    def flush(self) -> None:
        pass


@dataclass
class Reference:
    """A fitted reference: the density p(f), features and log-densities of the null set.

    Attributes:
        density: sbi's unconditional density estimator over f, shape (F,).
        features: f of the reference simulations, shape (m, F).
        log_probs: log p(f) of those, shape (m,).
        meta: the content of ``misspecification.json``.
    """

    density: torch.nn.Module
    features: Tensor
    log_probs: Tensor
    meta: dict

    @property
    def alpha(self) -> float:
        return float(self.meta["config"]["alpha"])


@torch.no_grad()
def features(model: TrainedModel, x: np.ndarray | Tensor, batch: int = 1024) -> Tensor:
    """f(x) of the model's embedding, shape (n, F), for inputs of shape (n, D)."""
    x = torch.as_tensor(x, dtype=torch.float32)
    embedding = model.embedding.eval()
    return torch.cat([embedding(x[s:s + batch]) for s in range(0, len(x), batch)])


def _build(config: MisspecConfig, batch_x: Tensor) -> torch.nn.Module:
    from sbi.neural_nets.factory import ZukoFlowType, marginal_nn

    return marginal_nn(ZukoFlowType(config.estimator), hidden_features=config.hidden,
                       num_transforms=config.transforms)(batch_x)


@torch.no_grad()
def log_density(density: torch.nn.Module, f: Tensor) -> Tensor:
    """log p(f), shape (n,), -inf where the flow gives NaN."""
    out = density.log_prob(f)
    return torch.nan_to_num(out, nan=-torch.inf)


def fit_reference(model: TrainedModel, heldout: np.ndarray, config: MisspecConfig) -> Reference:
    """Fit p(f) on held-out simulations' inputs (module docstring).

    Args:
        model: the trained model.
        heldout: network inputs of held-out simulations, shape (n, D), n >= MIN_HELDOUT.
        config: the fit.
    """
    if len(heldout) < MIN_HELDOUT:
        raise GbsbiError(f"a misspecification reference needs at least {MIN_HELDOUT} "
                         f"held-out simulations, found {len(heldout)}")
    return fit_density(features(model, heldout), config, model.hash)


def fit_density(f: Tensor, config: MisspecConfig, model_hash: str = "") -> Reference:
    """Split features of held-out simulations, fit p(f) on one part with sbi's
    ``MarginalTrainer``, take the other's log-densities as the null.

    Args:
        f: features, shape (n, F).
        config: the fit.
        model_hash: the model the features come from, recorded.
    """
    from sbi.inference import MarginalTrainer
    from sbi.utils.metrics import c2st

    f = torch.as_tensor(f, dtype=torch.float32)
    order = torch.randperm(len(f), generator=torch.Generator().manual_seed(config.seed))
    n_fit = int(round(config.fit_fraction * len(f)))
    fit, ref = f[order[:n_fit]], f[order[n_fit:]]
    torch.manual_seed(config.seed)
    trainer = MarginalTrainer(lambda batch: _build(config, batch), tracker=_NoTracker(),
                              show_progress_bars=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        density = trainer.append_samples(fit).train(max_num_epochs=config.max_epochs,
                                                    stop_after_epochs=config.patience,
                                                    training_batch_size=min(200, n_fit // 2))
    density.eval()
    log_probs = log_density(density, ref)
    with torch.no_grad():
        score = float(c2st(ref, density.sample(torch.Size((len(ref),)))))
    meta = {"format": FORMAT, "version": 1, "config": config.to_dict(), "n_fit": len(fit),
            "n_reference": len(ref), "c2st": score, "model_hash": model_hash,
            "epochs": int(trainer.epoch)}
    return Reference(density, ref, log_probs, meta)


def save_reference(directory: str | os.PathLike, reference: Reference) -> None:
    """Write the two files of the module docstring (the .json last, atomically)."""
    directory = Path(directory)
    with atomic_path(directory / STATE) as tmp:
        torch.save({"density": reference.density.state_dict(), "features": reference.features,
                    "log_probs": reference.log_probs}, tmp)
    meta = dict(reference.meta, sha256=sha256(directory / STATE))
    write_atomic(directory / META, json.dumps(meta, indent=1, sort_keys=True))


def load_reference(model: TrainedModel) -> Reference | None:
    """The model's reference, or None where its directory has none.

    Raises:
        GbsbiError: the files are changed, or were fitted for another model.
    """
    directory = model.directory
    if directory is None or not (directory / META).exists():
        return None
    try:
        meta = json.loads((directory / META).read_text())
    except (OSError, ValueError) as err:
        raise GbsbiError(f"{directory / META}: not readable ({err})") from None
    if meta.get("format") != FORMAT:
        raise GbsbiError(f"{directory / META}: not a misspecification reference")
    if meta.get("model_hash") != model.hash:
        raise GbsbiError(f"{directory / META}: fitted for another model (its model hash "
                         "differs); fit it again with `gbsbi misspec MODEL_DIR --fit-reference "
                         "BANK.h5`")
    path = directory / STATE
    if not path.exists() or meta.get("sha256") != sha256(path):
        raise GbsbiError(f"{path}: missing, or its SHA-256 differs from {META}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - weights_only refuses pickled objects
        raise GbsbiError(f"{path}: not a plain file of tensors, refused "
                         f"({type(err).__name__})") from None
    config = MisspecConfig(**meta["config"])
    density = _build(config, state["features"])
    density.load_state_dict(state["density"])
    return Reference(density.eval(), state["features"], state["log_probs"], meta)


def fit_and_save_reference(
    model: TrainedModel, heldout: np.ndarray, log: Callable[[str], None] = print
) -> None:
    """Fit the reference on held-out inputs and write it beside the model; with too few
    held-out simulations, say so and write none."""
    if len(heldout) < MIN_HELDOUT:
        log(f"no misspecification reference: {len(heldout)} held-out simulations, "
            f"{MIN_HELDOUT} needed")
        return
    reference = fit_reference(model, heldout, MisspecConfig(seed=model.spec.training.seed))
    save_reference(model.directory, reference)
    log(f"misspecification reference: density of f(x) fitted on {reference.meta['n_fit']} "
        f"held-out simulations, {reference.meta['n_reference']} for the null (C2ST of the "
        f"density {reference.meta['c2st']:.2f}, 0.5 is ideal)")
