"""``gbsbi group``: joint posteriors of the groups of a maps file (a material over a
temperature series, or the windows of one measurement)."""

from __future__ import annotations

import argparse
import sys

from gbsbi.cli.args import nonnegative_int, positive_float, positive_int
from gbsbi.group.config import LAWS, GroupPrior, GroupSettings


def _pair(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be LOW,HIGH, got {text!r}") from None
    return low, high


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def register(sub: argparse._SubParsersAction) -> None:
    prior, settings = GroupPrior(), GroupSettings()
    p = sub.add_parser(
        "group",
        help="joint posteriors per group of a maps file (Arrhenius D, shared sigma and c)",
        description="For each group of the maps file (its 'group' dataset: one material, or "
        "one measurement's windows), sample the joint posterior of the group's parameters "
        "from the product of its scans' posteriors, q(u_i | x_i) / p(u_i), with emcee. "
        "--law arrhenius: D_i = D_ref exp(-Ea / k_B (1/T_i - 1/T_ref)); --law none: D shared "
        "when named in --shared, else per scan. sigma and c are shared when named in --shared. "
        "Writes an ArviZ NetCDF (posterior; log_likelihood for arviz.loo and arviz.compare), "
        "a CSV per group and, in OUT-plots/, an Arrhenius plot and a corner plot per group. "
        "Scans flagged as unlike the simulations are left out unless --include-flagged. The "
        "priors: D_ref uniform on --d-ref-prior, Ea uniform on --ea-prior, shared sigma and c "
        "as per scan; a D_ref and Ea that send any D_i outside the per-scan prior have zero "
        "density.",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="model directory (posterior estimator)")
    p.add_argument("maps", metavar="MAPS.h5", help="maps file with a 'group' dataset")
    p.add_argument("--out", required=True, metavar="GROUPS.nc", help="the group posteriors")
    p.add_argument("--law", choices=LAWS, default="none",
                   help="arrhenius: D from D_ref and Ea; none: D shared or per scan (default)")
    p.add_argument("--shared", type=_names, default=("sigma", "c"), metavar="NAMES",
                   help="parameters every scan of a group shares, of D, sigma, c (default "
                   "sigma,c)")
    p.add_argument("--t-ref", type=positive_float, default=prior.t_ref, metavar="K",
                   help=f"reference temperature of D_ref (default {prior.t_ref:g} K)")
    p.add_argument("--d-ref-prior", type=_pair, default=prior.d_ref, metavar="LOW,HIGH",
                   help=f"uniform prior of D_ref in nm^2/s (default {prior.d_ref[0]:g},"
                   f"{prior.d_ref[1]:g})")
    p.add_argument("--ea-prior", type=_pair, default=prior.ea, metavar="LOW,HIGH",
                   help=f"uniform prior of Ea in eV (default {prior.ea[0]:g},{prior.ea[1]:g})")
    p.add_argument("--draws", type=positive_int, default=settings.draws,
                   help=f"draws per group (default {settings.draws})")
    p.add_argument("--max-steps", type=positive_int, default=settings.max_steps,
                   help=f"the most emcee steps (default {settings.max_steps})")
    p.add_argument("--seed", type=nonnegative_int, default=settings.seed,
                   help="random seed (default 0)")
    p.add_argument("--temper", type=positive_float, default=settings.temper, metavar="LAMBDA",
                   help="power of each scan's likelihood in the product, in (0, 1] (default "
                   f"{settings.temper:g}; 1: the plain product; docs/inference.md"
                   "#group-posteriors)")
    p.add_argument("--members", type=nonnegative_int, default=settings.members, metavar="K",
                   help="mix only the first K members of an ensemble in each scan's "
                   "likelihood (default 0: all); 1 is about 1.7 times faster than the "
                   "default ensemble of three, calibrated in studies/results/"
                   "group_calibration.md")
    p.add_argument("--include-flagged", action="store_true",
                   help="keep scans flagged as unlike the simulations")
    p.add_argument("--no-plots", action="store_true", help="write no figures")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gbsbi.group.files import group_to_files

    def warn(line: str) -> None:
        print(f"gbsbi group: warning: {line}", file=sys.stderr)

    prior = GroupPrior(args.d_ref_prior, args.ea_prior, args.t_ref)
    settings = GroupSettings(draws=args.draws, max_steps=args.max_steps, seed=args.seed,
                             temper=args.temper, members=args.members)
    group_to_files(args.model, args.maps, args.out, law=args.law, shared=args.shared,
                   prior=prior, settings=settings, include_flagged=args.include_flagged,
                   plots=not args.no_plots, overwrite=args.overwrite, warn=warn)
    return 0
