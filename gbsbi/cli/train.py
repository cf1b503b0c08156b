"""``gbsbi train``: a posterior estimator (NPE) from a simulation bank, optionally adapted to
unlabelled experimental maps; or the paper's point estimator (``--estimator point``)."""

from __future__ import annotations

import argparse

from gbsbi.cli.args import nonnegative_float, nonnegative_int, positive_float, positive_int

#: Default weights of the adaptation terms, from studies/adaptation_weights.py (see README).
DEFAULT_CORAL = 0.01
DEFAULT_PHI = 0.1
#: The point estimator's, from studies/point_settings.py (see README): weights of the
#: adaptation stage, its learning rate, and the per-group fine-tuning.
POINT_CORAL = 0.1
POINT_PHI = 10.0
POINT_ADAPT_LEARNING_RATE = 1e-3
POINT_ADAPT_EPOCHS = 10
POINT_FINE_TUNE_STEPS = 50
POINT_FINE_TUNE_LEARNING_RATE = 1e-4
POINT_FINE_TUNE_LAYERS = 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a posterior estimator on a simulation bank",
        description="Train a neural posterior estimator p(D, sigma, c | map, T) on a bank "
        "simulated as measured (`gbsbi simulate --measurement fast`). With --experimental, "
        "the embedding is aligned to those unlabelled maps (CORAL) and their posteriors must "
        "reproduce their measured Phi (through a surrogate fitted on the bank); without it, "
        "plain NPE. Writes a model directory; Ctrl-C keeps a checkpoint for --resume. "
        "--estimator point trains the paper's baseline instead: the same feature extractor "
        "with an MLP predicting D, sigma and c (MSE), then, with --experimental, adapted "
        "(CORAL plus the Phi term through the surrogate) and with --fine-tune-groups "
        "fine-tuned once per group of the maps file (one head per group).",
    )
    p.add_argument("bank", metavar="BANK.h5", help="simulation bank")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="model directory")
    p.add_argument("--experimental", metavar="MAPS.h5", help="unlabelled maps to adapt to")
    p.add_argument("--estimator", choices=("npe", "point"), default="npe",
                   help="npe: posterior estimator (default); point: the paper's regressor")
    p.add_argument("--coral", type=nonnegative_float, metavar="W",
                   help=f"weight of CORAL (default {DEFAULT_CORAL} with --experimental, "
                   f"{POINT_CORAL} for --estimator point, else 0)")
    p.add_argument("--phi-weight", type=nonnegative_float, metavar="W",
                   help=f"weight of the Phi-consistency term (default {DEFAULT_PHI} with "
                   f"--experimental, {POINT_PHI} for --estimator point, else 0)")
    point = p.add_argument_group("point estimator (--estimator point)")
    point.add_argument("--adapt-learning-rate", type=positive_float, metavar="LR",
                       help="Adam's step size in the adaptation stage "
                       f"(default {POINT_ADAPT_LEARNING_RATE:g})")
    point.add_argument("--adapt-epochs", type=positive_int, metavar="N",
                       help=f"most epochs of the adaptation stage (default {POINT_ADAPT_EPOCHS})")
    point.add_argument("--fine-tune-groups", action="store_true",
                       help="fine-tune a head per group of --experimental (needs a 'group' "
                       "dataset and a positive --phi-weight)")
    point.add_argument("--fine-tune-steps", type=positive_int, metavar="N",
                       help=f"Adam steps per group (default {POINT_FINE_TUNE_STEPS})")
    point.add_argument("--fine-tune-layers", type=positive_int, metavar="K",
                       help="last layers of the head that fine-tuning updates (default "
                       f"{POINT_FINE_TUNE_LAYERS})")
    p.add_argument("--epochs", type=positive_int, default=200,
                   help="most epochs (default 200; of the vanilla stage for --estimator point)")
    p.add_argument("--patience", type=positive_int, default=15,
                   help="stop after this many epochs without a better validation NLL (default 15)")
    p.add_argument("--batch-size", type=positive_int, default=256,
                   help="simulations per step (256)")
    p.add_argument("--learning-rate", type=positive_float, default=1e-3, help="Adam (1e-3)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto: a GPU when there is one (default)")
    p.add_argument("--cache", metavar="DIR", help="folder to cache the bank's reduced inputs")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="replace the model directory")
    p.set_defaults(func=run)


def weights(args: argparse.Namespace) -> tuple[float, float]:
    """The CORAL and Phi weights: as given, else the defaults with --experimental, else 0."""
    adapted = args.experimental is not None
    point = getattr(args, "estimator", "npe") == "point"
    default_coral, default_phi = (POINT_CORAL, POINT_PHI) if point else (DEFAULT_CORAL,
                                                                          DEFAULT_PHI)
    coral = args.coral if args.coral is not None else (default_coral if adapted else 0.0)
    phi = args.phi_weight if args.phi_weight is not None else (default_phi if adapted else 0.0)
    return coral, phi


def _given(value: float | None, default: float) -> float:
    return default if value is None else value


POINT_ONLY = ("adapt_learning_rate", "adapt_epochs", "fine_tune_steps", "fine_tune_layers")


def point_config(args: argparse.Namespace, config):  # noqa: ANN001, ANN201 - lazy types
    """The point estimator's stages from the flags: stage 1 is ``config`` without the domain
    terms, stage 2 (with --experimental) ``config`` at the adaptation's learning rate and
    epochs."""
    from dataclasses import replace

    from gbsbi.inference.point_training import FineTuneConfig, PointConfig

    adaptation = None
    if config.adapted:
        adaptation = replace(
            config, learning_rate=_given(args.adapt_learning_rate, POINT_ADAPT_LEARNING_RATE),
            epochs=_given(args.adapt_epochs, POINT_ADAPT_EPOCHS))
    fine = None
    if args.fine_tune_groups:
        fine = FineTuneConfig(
            steps=_given(args.fine_tune_steps, POINT_FINE_TUNE_STEPS),
            learning_rate=POINT_FINE_TUNE_LEARNING_RATE,
            layers=_given(args.fine_tune_layers, POINT_FINE_TUNE_LAYERS))
    return replace(config, coral_weight=0.0, phi_weight=0.0), PointConfig(
        adaptation=adaptation, fine_tune=fine)


def run(args: argparse.Namespace) -> int:
    from gbsbi.errors import GbsbiError
    from gbsbi.inference.pipeline import train_model
    from gbsbi.inference.training import TrainConfig

    if args.estimator != "point":
        given = [name for name in POINT_ONLY if getattr(args, name) is not None]
        given += ["fine_tune_groups"] if args.fine_tune_groups else []
        if given:
            raise GbsbiError(f"--{given[0].replace('_', '-')} applies to --estimator point only")
    coral, phi = weights(args)
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        patience=args.patience, coral_weight=coral, phi_weight=phi, seed=args.seed,
    )
    point = None
    if args.estimator == "point":
        if args.fine_tune_groups and args.experimental is None:
            raise GbsbiError("--fine-tune-groups needs --experimental MAPS.h5 (the grouped "
                             "maps to fine-tune on)")
        config, point = point_config(args, config)
    try:
        train_model(args.bank, args.out, config, experimental=args.experimental, point=point,
                    device=args.device, resume=args.resume, overwrite=args.overwrite,
                    cache=args.cache)
    except KeyboardInterrupt:
        print(f"gbsbi train: interrupted; the last finished epoch is kept in {args.out}, "
              "continue with the same command and --resume")
        return 130
    return 0
