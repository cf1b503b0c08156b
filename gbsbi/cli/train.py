"""``gbsbi train``: a posterior estimator (NPE) from a simulation bank, optionally adapted to
unlabelled experimental maps."""

from __future__ import annotations

import argparse
import math

#: Default weights of the adaptation terms, from studies/adaptation_weights.py (see README).
DEFAULT_CORAL = 0.1
DEFAULT_PHI = 1.0


def finite_float(text: str) -> float:
    """An argparse type: a finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a posterior estimator on a simulation bank",
        description="Train a neural posterior estimator p(D, sigma, c | map, T) on a bank "
        "simulated as measured (`gbsbi simulate --measurement fast`). With --experimental, "
        "the embedding is aligned to those unlabelled maps (CORAL) and their posteriors must "
        "reproduce their measured Phi (through a surrogate fitted on the bank); without it, "
        "plain NPE. Writes a model directory; Ctrl-C keeps a checkpoint for --resume.",
    )
    p.add_argument("bank", metavar="BANK.h5", help="simulation bank")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="model directory")
    p.add_argument("--experimental", metavar="MAPS.h5", help="unlabelled maps to adapt to")
    p.add_argument("--coral", type=finite_float, metavar="W",
                   help=f"weight of CORAL (default {DEFAULT_CORAL} with --experimental, else 0)")
    p.add_argument("--phi-weight", type=finite_float, metavar="W",
                   help=f"weight of the Phi-consistency term (default {DEFAULT_PHI} with "
                   "--experimental, else 0)")
    p.add_argument("--epochs", type=int, default=200, help="most epochs (default 200)")
    p.add_argument("--patience", type=int, default=15,
                   help="stop after this many epochs without a better validation NLL (default 15)")
    p.add_argument("--batch-size", type=int, default=256, help="simulations per step (256)")
    p.add_argument("--learning-rate", type=finite_float, default=1e-3, help="Adam (1e-3)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto: a GPU when there is one (default)")
    p.add_argument("--cache", metavar="DIR", help="folder to cache the bank's reduced inputs")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="replace the model directory")
    p.set_defaults(func=run)


def weights(args: argparse.Namespace) -> tuple[float, float]:
    """The CORAL and Phi weights: as given, else the defaults with --experimental, else 0."""
    adapted = args.experimental is not None
    coral = args.coral if args.coral is not None else (DEFAULT_CORAL if adapted else 0.0)
    phi = args.phi_weight if args.phi_weight is not None else (DEFAULT_PHI if adapted else 0.0)
    return coral, phi


def run(args: argparse.Namespace) -> int:
    from gbsbi.inference.pipeline import train_model
    from gbsbi.inference.training import TrainConfig

    coral, phi = weights(args)
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        patience=args.patience, coral_weight=coral, phi_weight=phi, seed=args.seed,
    )
    try:
        train_model(args.bank, args.out, config, experimental=args.experimental,
                    device=args.device, resume=args.resume, overwrite=args.overwrite,
                    cache=args.cache)
    except KeyboardInterrupt:
        print(f"gbsbi train: interrupted; the last finished epoch is kept in {args.out}, "
              "continue with the same command and --resume")
        return 130
    return 0
