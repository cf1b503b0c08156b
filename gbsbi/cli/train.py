"""``gbsbi train``: a posterior estimator (NPE) from a simulation bank, optionally adapted to
unlabelled experimental maps; or the paper's point estimator (``--estimator point``)."""

from __future__ import annotations

import argparse

from gbsbi.cli.args import nonnegative_float, nonnegative_int, positive_float, positive_int
from gbsbi.inference.config import TrainConfig
from gbsbi.inference.npe.config import MAX_MEMBERS, Adaptation, Robustness
from gbsbi.inference.point.config import Adaptation as PointAdaptation
from gbsbi.inference.point.config import FineTuneConfig

#: Flags of the point estimator only.
POINT_ONLY = ("adapt_learning_rate", "adapt_epochs", "fine_tune_steps", "fine_tune_layers",
              "fine_tune_groups")
#: Flags of the posterior estimator only.
NPE_ONLY = ("mmd_weight", "augment_noise", "members")


def register(sub: argparse._SubParsersAction) -> None:
    npe, point, fine, train = Adaptation(), PointAdaptation(), FineTuneConfig(), TrainConfig()
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
                   help=f"weight of CORAL (default {npe.coral_weight} with --experimental, "
                   f"{point.coral_weight} for --estimator point, else 0)")
    p.add_argument("--phi-weight", type=nonnegative_float, metavar="W",
                   help=f"weight of the Phi-consistency term (default {npe.phi_weight} with "
                   f"--experimental, {point.phi_weight} for --estimator point, else 0)")
    p.add_argument("--mmd-weight", type=nonnegative_float, metavar="W",
                   help="weight of the MMD between simulated and experimental embeddings "
                   f"(NPE-RS; default {npe.mmd_weight} with --experimental, else 0)")
    p.add_argument("--augment-noise", type=nonnegative_float, metavar="S",
                   help="sd of Gaussian noise added to the standardised maps in training "
                   f"(noise augmentation; default {Robustness().augment_noise})")
    p.add_argument("--members", type=positive_int, metavar="K",
                   help="trainings from K initialisations mixed into one posterior (an "
                   f"ensemble; default {Robustness().members}, at most {MAX_MEMBERS}); each "
                   "costs one training")
    group = p.add_argument_group("point estimator (--estimator point)")
    group.add_argument("--adapt-learning-rate", type=positive_float, metavar="LR",
                       help="Adam's step size in the adaptation stage "
                       f"(default {point.learning_rate:g})")
    group.add_argument("--adapt-epochs", type=positive_int, metavar="N",
                       help=f"most epochs of the adaptation stage (default {point.epochs})")
    group.add_argument("--fine-tune-groups", action="store_true",
                       help="fine-tune a head per group of --experimental (needs a 'group' "
                       "dataset and a positive --phi-weight)")
    group.add_argument("--fine-tune-steps", type=positive_int, metavar="N",
                       help=f"Adam steps per group (default {fine.steps})")
    group.add_argument("--fine-tune-layers", type=positive_int, metavar="K",
                       help=f"last layers of the head that fine-tuning updates (default "
                       f"{fine.layers})")
    p.add_argument("--epochs", type=positive_int, default=train.epochs,
                   help=f"most epochs (default {train.epochs}; of the vanilla stage for "
                   "--estimator point)")
    p.add_argument("--patience", type=positive_int, default=train.patience,
                   help="stop after this many epochs without a better validation NLL "
                   f"(default {train.patience})")
    p.add_argument("--batch-size", type=positive_int, default=train.batch_size,
                   help=f"simulations per step ({train.batch_size})")
    p.add_argument("--learning-rate", type=positive_float, default=train.learning_rate,
                   help=f"Adam ({train.learning_rate:g})")
    p.add_argument("--seed", type=nonnegative_int, default=train.seed,
                   help="random seed (default 0)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto: a GPU when there is one (default)")
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="torch's CPU threads (default: the cores other processes leave free, "
                   "looked at every epoch)")
    p.add_argument("--cache", metavar="DIR", help="folder to cache the bank's reduced inputs "
                   "(default: $GBSBI_CACHE, else $XDG_CACHE_HOME/gbsbi or ~/.cache/gbsbi)")
    p.add_argument("--no-cache", action="store_true", help="do not cache the reduced inputs")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="replace the model directory")
    p.set_defaults(func=run)


def settings(args: argparse.Namespace):  # noqa: ANN201 - (TrainConfig, estimator settings)
    """The training and estimator settings the flags ask for."""
    from gbsbi.errors import GbsbiError
    from gbsbi.inference.npe.config import settings as npe_settings
    from gbsbi.inference.point.config import settings as point_settings

    training = TrainConfig(epochs=args.epochs, batch_size=args.batch_size,
                           learning_rate=args.learning_rate, patience=args.patience,
                           seed=args.seed)
    adapted = args.experimental is not None
    if args.estimator == "point":
        given = [name for name in NPE_ONLY if getattr(args, name) is not None]
        if given:
            raise GbsbiError(f"--{given[0].replace('_', '-')} applies to the posterior "
                             "estimator only")
        return point_settings(training, adapted, args.coral, args.phi_weight,
                              args.adapt_learning_rate, args.adapt_epochs, args.fine_tune_steps,
                              args.fine_tune_layers, args.fine_tune_groups)
    given = [name for name in POINT_ONLY if getattr(args, name) not in (None, False)]
    if given:
        raise GbsbiError(f"--{given[0].replace('_', '-')} applies to --estimator point only")
    if args.members is not None and args.members > MAX_MEMBERS:
        raise GbsbiError(f"--members: at most {MAX_MEMBERS}, got {args.members}")
    return npe_settings(training, adapted, args.coral, args.phi_weight, args.mmd_weight,
                        args.augment_noise, args.members)


def run(args: argparse.Namespace) -> int:
    from gbsbi.inference.data import default_cache
    from gbsbi.inference.pipeline import train_model

    training, estimator = settings(args)
    cache = None if args.no_cache else (args.cache or default_cache())
    try:
        train_model(args.bank, args.out, training, estimator, experimental=args.experimental,
                    device=args.device, resume=args.resume, overwrite=args.overwrite,
                    cache=cache, threads=args.threads)
    except KeyboardInterrupt:
        print(f"gbsbi train: interrupted; the last finished epoch is kept in {args.out}, "
              "continue with the same command and --resume")
        return 130
    return 0
