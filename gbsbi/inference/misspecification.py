r"""The reference of the misspecification test: what held-out simulations of the model look
like to each statistic (docs/validation.md#misspecification-per-scan).

The held-out simulations (the training run's validation split: never a gradient step, used for
early stopping only) are split in two. On the first part (``fit_fraction``):

* an unconditional flow p(f) over the embedding f(x), fitted with sbi's ``MarginalTrainer``
  (its fit is checked by a C2ST between the second part's features and draws of p(f); a fit
  worse than ``MisspecConfig.c2st_limit`` is refitted once with a larger flow, and reported if
  it stays poor: its p-values stay valid, its power is what suffers);
* the principal subspace of the standardised inputs
  (:class:`gbsbi.validation.statistics.Subspace`).

On the second part, the null values of each statistic: the log-densities, the subspace
residuals, and (on up to ``ppc_null`` of them, from their maps in the bank) the raw predictive
p-values of :func:`gbsbi.validation.ppc.predictive_statistics` at their own posterior draws.

Files, written into the model directory beside the model (the model's own hash does not
cover them; they record the hash of the model they were fitted for):

=========================  =====================================================
``misspecification.pt``    state_dict of p(f), reference features, null values,
                           the principal subspace
``misspecification.json``  settings, the model's hash, SHA-256 of the .pt, c2st
=========================  =====================================================
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gbsbi.errors import GbsbiError
from gbsbi.inference.model import TrainedModel, sha256
from gbsbi.io.atomic import atomic_path, write_atomic
from gbsbi.validation.statistics import PPC_DRAWS, Subspace

FORMAT = "gbsbi-misspecification"
#: 2: the predictive statistics' null holds continuous raw p-values (a reference of version 1
#: holds shares of replicates; its predictive statistics are left out, the others kept).
#: 3: the null of the trend statistic ``ppc_trend`` too (a reference of version 2 has none;
#: its scans are tested without it). 4: ``ppc_trend`` averages, in every part of the window,
#: only the lags with pairs in every part (exactly 0 for any map that depends on t2 - t1
#: only); the version-3 null of it is left out.
VERSION = 4
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
        learning_rate: Adam's step size in sbi's trainer. 2e-3, not sbi's 5e-4: on the few
            hundred held-out simulations of a small bank the density was still improving
            after 100 epochs at 5e-4 (C2ST 0.85 on the demo's model, refitted larger for
            another 35-70 s to 0.78), and at 2e-3 it reaches 0.63-0.65 in the same time.
        patience: epochs without a better validation loss before sbi's trainer stops.
        seed: seeds the split and the fit.
        c2st_limit: a density whose C2ST against the null features exceeds this is refitted
            once with a larger flow, and reported as poor if it still does.
        ppc_null: held-out simulations whose predictive p-values make the predictive
            statistics' null (each costs a posterior sample and 40 replicates).
    """

    estimator: str = "maf"
    hidden: int = 64
    transforms: int = 3
    fit_fraction: float = 0.6
    alpha: float = 0.05
    max_epochs: int = 300
    learning_rate: float = 2e-3
    patience: int = 10
    seed: int = 0
    c2st_limit: float = 0.7
    ppc_null: int = 300

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
    """A fitted reference (module docstring).

    Attributes:
        density: sbi's unconditional density estimator over f, shape (F,).
        features: f of the reference simulations, shape (m, F).
        log_probs: log p(f) of those, shape (m,).
        meta: the content of ``misspecification.json``.
        subspace: the principal subspace of standardised inputs, or None (a reference made
            before it existed).
        nulls: the null values of the other statistics by name (``subspace``, ``ppc_map``,
            ``ppc_phi``, ``ppc_trend``), each shape (m_k,).
    """

    density: torch.nn.Module
    features: Tensor
    log_probs: Tensor
    meta: dict
    subspace: Subspace | None = None
    nulls: dict[str, np.ndarray] = field(default_factory=dict)

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


def standardised(model: TrainedModel, x: np.ndarray) -> np.ndarray:
    """Inputs standardised as the embedding does (its fixed bank statistics), shape (n, D)."""
    embedding = model.embedding
    shift, scale = embedding.shift.numpy(), embedding.scale.numpy()
    return (np.asarray(x, dtype=np.float64) - shift) / scale


def subspace_columns(model: TrainedModel) -> np.ndarray:
    """The input entries the principal subspace is made of: the map's bins and the lag
    profile."""
    layout = model.embedding.layout
    return np.r_[np.arange(layout.map.start, layout.map.stop),
                 np.arange(layout.lags.start, layout.lags.stop)]


def fit_reference(model: TrainedModel, heldout: np.ndarray, config: MisspecConfig,
                  maps: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                  log: Callable[[str], None] = print) -> Reference:
    """Fit the reference on held-out simulations (module docstring).

    Args:
        model: the trained model.
        heldout: network inputs of held-out simulations, shape (n, D), n >= MIN_HELDOUT.
        config: the fit.
        maps: those simulations' maps C, shape (n, T, T), temperatures and window ages, each
            shape (n,), for the predictive statistics; None for none.
        log: where notes go.
    """
    if len(heldout) < MIN_HELDOUT:
        raise GbsbiError(f"a misspecification reference needs at least {MIN_HELDOUT} "
                         f"held-out simulations, found {len(heldout)}")
    reference = fit_density(features(model, heldout), config, model.hash)
    if reference.meta["c2st"] > config.c2st_limit:
        log(f"misspecification reference: the density fits poorly (C2ST "
            f"{reference.meta['c2st']:.2f} > {config.c2st_limit}); fitting a larger one")
        larger = replace(config, estimator="nsf", transforms=5, patience=2 * config.patience,
                         max_epochs=3 * config.max_epochs)
        again = fit_density(features(model, heldout), larger, model.hash)
        if again.meta["c2st"] < reference.meta["c2st"]:
            reference = again
    reference.meta["fit_ok"] = reference.meta["c2st"] <= config.c2st_limit
    order = _split(len(heldout), config)
    fit_part, null_part = order[: reference.meta["n_fit"]], order[reference.meta["n_fit"]:]
    z = standardised(model, heldout)
    subspace = Subspace.fit(z[fit_part], subspace_columns(model))
    nulls = {"subspace": subspace.residual(z[null_part])}
    reference.meta["subspace_components"] = len(subspace.components)
    if maps is not None:
        pick = null_part[: config.ppc_null]
        nulls["ppc_map"], nulls["ppc_phi"], nulls["ppc_trend"] = predictive_null(
            model, heldout[pick], maps[0][pick], maps[1][pick], config.seed,
            maps[2][pick])
        reference.meta["n_ppc_null"] = len(pick)
    return replace(reference, subspace=subspace, nulls=nulls)


def _split(n: int, config: MisspecConfig) -> np.ndarray:
    """The order of the held-out simulations: the first ``n_fit`` fit, the rest the null."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(config.seed)).numpy()


def predictive_null(model: TrainedModel, x: np.ndarray, C: np.ndarray,
                    temperature: np.ndarray, seed: int,
                    age: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The raw predictive p-values (map, Phi, trend) of simulations at their own posterior
    draws (and window ages, None: 0), each shape (n,)."""
    from gbsbi.inference.npe.predict import posterior_draws
    from gbsbi.validation.ppc import predictive_statistics

    theta = posterior_draws(model, x, PPC_DRAWS, seed)
    rng = np.random.default_rng(seed)
    spec = model.spec
    age = np.zeros(len(x)) if age is None else age
    out = [predictive_statistics(theta[:, k], float(temperature[k]), C[k], spec.experiment,
                                 spec.nuisance, None if spec.sample.single else spec.sample,
                                 spec.inputs.bins, spec.inputs.grading, rng, float(age[k]))
           for k in range(len(x))]
    return tuple(np.array([o[k] for o in out]) for k in range(3))


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
    order = torch.as_tensor(_split(len(f), config))
    n_fit = int(round(config.fit_fraction * len(f)))
    fit, ref = f[order[:n_fit]], f[order[n_fit:]]
    torch.manual_seed(config.seed)
    trainer = MarginalTrainer(lambda batch: _build(config, batch), tracker=_NoTracker(),
                              show_progress_bars=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        density = trainer.append_samples(fit).train(max_num_epochs=config.max_epochs,
                                                    stop_after_epochs=config.patience,
                                                    training_batch_size=min(200, n_fit // 2),
                                                    learning_rate=config.learning_rate)
    density.eval()
    log_probs = log_density(density, ref)
    with torch.no_grad():
        score = float(c2st(ref, density.sample(torch.Size((len(ref),)))))
    meta = {"format": FORMAT, "version": VERSION, "config": config.to_dict(), "n_fit": len(fit),
            "n_reference": len(ref), "c2st": score, "model_hash": model_hash,
            "epochs": int(trainer.epoch)}
    return Reference(density, ref, log_probs, meta)


def save_reference(directory: str | os.PathLike, reference: Reference) -> None:
    """Write the two files of the module docstring (the .json last, atomically)."""
    directory = Path(directory)
    state = {"density": reference.density.state_dict(), "features": reference.features,
             "log_probs": reference.log_probs,
             **{f"null_{k}": torch.as_tensor(v) for k, v in reference.nulls.items()}}
    if reference.subspace is not None:
        state |= {"subspace_mean": torch.as_tensor(reference.subspace.mean),
                  "subspace_components": torch.as_tensor(reference.subspace.components),
                  "subspace_columns": torch.as_tensor(reference.subspace.columns)}
    with atomic_path(directory / STATE) as tmp:
        torch.save(state, tmp)
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
    subspace = None
    if "subspace_mean" in state:
        subspace = Subspace(state["subspace_mean"].numpy(), state["subspace_components"].numpy(),
                            state["subspace_columns"].numpy())
    nulls = {k[len("null_"):]: v.numpy() for k, v in state.items() if k.startswith("null_")}
    if meta.get("version", 1) < 2:  # shares of replicates, not the continuous raw values
        nulls = {k: v for k, v in nulls.items() if not k.startswith("ppc_")}
    if meta.get("version", 1) < 4:  # another trend statistic than this gbsbi computes
        nulls.pop("ppc_trend", None)
    return Reference(density.eval(), state["features"], state["log_probs"], meta, subspace,
                     nulls)


def fit_and_save_reference(
    model: TrainedModel, heldout: np.ndarray, log: Callable[[str], None] = print,
    maps: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> None:
    """Fit the reference on held-out inputs (and their maps, for the predictive statistics)
    and write it beside the model; with too few held-out simulations, say so and write none."""
    if len(heldout) < MIN_HELDOUT:
        log(f"no misspecification reference: {len(heldout)} held-out simulations, "
            f"{MIN_HELDOUT} needed")
        return
    reference = fit_reference(model, heldout, MisspecConfig(seed=model.spec.training.seed),
                              maps, log)
    save_reference(model.directory, reference)
    log(f"misspecification reference: density of f(x) fitted on {reference.meta['n_fit']} "
        f"held-out simulations, {reference.meta['n_reference']} for the null (C2ST of the "
        f"density {reference.meta['c2st']:.2f}, 0.5 is ideal); principal subspace of "
        f"{reference.meta['subspace_components']} components"
        + (f"; predictive null of {reference.meta['n_ppc_null']} simulations"
           if "n_ppc_null" in reference.meta else ""))
    if not reference.meta["fit_ok"]:
        log(f"warning: the density of the embedding fits its simulations poorly (C2ST "
            f"{reference.meta['c2st']:.2f}); its p-values are valid but weak: train on more "
            "simulations")
