"""``gbsbi simulate``: simulation banks over the prior, maps for given parameters, or
pseudo-experiments.

Three modes, by the flags given: a bank (the default), maps for given parameters (``--theta``)
and pseudo-experiments (``--groups``). A flag that the mode would not use is refused rather than
ignored (:data:`MODE_FLAGS`).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import TYPE_CHECKING

from gbsbi.cli.args import (
    nonnegative_int,
    positive_float,
    positive_floats,
    positive_int,
)
from gbsbi.errors import GbsbiError

if TYPE_CHECKING:  # numpy and the simulators load when a command runs, not for --help
    import numpy as np

    from gbsbi.configuration import Setup

#: Maps in a bank unless --n says otherwise: the size studies/results/scaling.md recommends.
BANK_SIZE = 100_000
#: Defaults of the flags whose presence is checked against the mode (their default is None).
DEFAULTS = {"block_size": 256, "workers": 1, "temperatures": (300.0, 350.0, 400.0, 450.0),
            "repeats": 5, "counts": 0.05, "n_pix": 20_000, "beta": 0.2}
#: The flags each mode takes, beyond --out, --seed, --config and --overwrite.
MODE_FLAGS = {
    "bank": {"n", "block_size", "workers", "scheduler", "resume", "measurement"},
    "given": {"theta", "n", "temperature", "measurement", "counts", "n_pix", "beta"},
    "pseudo": {"groups", "measurement", "temperatures", "repeats", "counts", "n_pix", "beta"},
}
#: Every flag of :data:`MODE_FLAGS`, as typed.
FLAG_NAMES = {"n": "--n", "block_size": "--block-size", "workers": "--workers",
              "scheduler": "--scheduler", "resume": "--resume", "measurement": "--measurement",
              "theta": "--theta", "temperature": "--temperature", "counts": "--counts",
              "n_pix": "--n-pix", "beta": "--beta", "groups": "--groups",
              "temperatures": "--temperatures", "repeats": "--repeats"}
_MODE_NAMES = {"bank": "a bank", "given": "--theta", "pseudo": "--groups"}
#: Said when a bank is given a flag of measured maps.
_BANK_NOTE = ("a bank draws T from the prior and the measurement nuisances from the "
              "configuration's 'measurement' ranges (see `gbsbi config`)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate a bank of maps over the prior, or maps for given parameters",
        description="Simulate two-time maps. Without --theta: a bank of N maps with parameters "
        "drawn from the prior, resumable after an interruption (--resume) and parallel "
        "(--workers, --scheduler). With --theta: maps for the given parameters, noiseless or "
        "measured (--measurement with --counts, --n-pix, --beta). With --groups: "
        "pseudo-experiments. A flag the chosen mode does not use is an error.",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="output HDF5 file")
    p.add_argument("--n", type=positive_int,
                   help=f"number of maps (default {BANK_SIZE:,}, the bank size "
                   "studies/results/scaling.md recommends; 1 with --theta)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="root random seed (default 0)")
    p.add_argument("--config", metavar="FILE", help="JSON configuration (see `gbsbi config`)")
    p.add_argument("--block-size", type=positive_int,
                   help=f"maps per block of a bank (default {DEFAULTS['block_size']})")
    p.add_argument("--workers", type=positive_int,
                   help=f"local worker processes for a bank (default {DEFAULTS['workers']})")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask distributed scheduler address")
    p.add_argument("--resume", action="store_true", default=None,
                   help="continue an interrupted bank")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument(
        "--theta", metavar="D=..,sigma=..,c=..",
        help="simulate these parameters (D in nm^2/s, sigma in J/m^2, c in [0, 1]) instead of "
        "drawing from the prior; --n gives the number of replicates (default 1 here)",
    )
    p.add_argument("--temperature", type=positive_float, metavar="K",
                   help="temperature for --theta")
    p.add_argument(
        "--measurement", choices=("none", "fast", "exact"),
        help="simulate maps as measured: none (noiseless, the default), fast (fast noise model) "
        "or exact (photon-counting speckle pixels); a bank draws counts, N_pix and beta from "
        "the configuration's 'measurement' ranges, --theta and --groups take --counts, "
        "--n-pix and --beta",
    )
    measured = p.add_argument_group(
        "measured maps for --theta and pseudo-experiments",
        "with --groups: G groups, each with one theta from the prior, measured at every "
        "temperature --repeats times (default 3 x 4 x 5 = 60 maps), written as a maps file "
        "with known theta, groups and split-half maps; with --theta and --measurement fast or "
        "exact: the given parameters measured at these settings",
    )
    measured.add_argument("--groups", type=positive_int, metavar="G", help="number of groups")
    measured.add_argument("--temperatures", type=positive_floats, metavar="K,K,...",
                          help="temperatures in K (default 300,350,400,450)")
    measured.add_argument("--repeats", type=positive_int,
                          help=f"maps per group and temperature (default {DEFAULTS['repeats']})")
    measured.add_argument("--counts", type=positive_float,
                          help="mean photon counts per pixel per frame (default "
                          f"{DEFAULTS['counts']})")
    measured.add_argument("--n-pix", type=positive_int,
                          help=f"pixels, at least 2 (default {DEFAULTS['n_pix']})")
    measured.add_argument("--beta", type=positive_float,
                          help=f"speckle contrast in (0, 1] (default {DEFAULTS['beta']})")
    p.set_defaults(func=run)


def _mode(args: argparse.Namespace) -> str:
    """The mode the flags ask for, after refusing the flags it would not use."""
    if args.theta is not None and args.groups is not None:
        raise GbsbiError("--theta and --groups are two modes; pass one")
    mode = "given" if args.theta is not None else "pseudo" if args.groups is not None else "bank"
    given = [name for name in FLAG_NAMES if getattr(args, name) is not None]
    unused = [name for name in given if name not in MODE_FLAGS[mode]]
    if unused:
        whose = [f"{FLAG_NAMES[name]} is for " + " and ".join(
            _MODE_NAMES[m] for m in MODE_FLAGS if name in MODE_FLAGS[m]) for name in unused]
        note = f"; {_BANK_NOTE}" if mode == "bank" else ""
        raise GbsbiError(f"{', '.join(FLAG_NAMES[n] for n in unused)} cannot be used with "
                         f"{_MODE_NAMES[mode]} ({'; '.join(whose)}){note}")
    if mode == "given" and (args.measurement or "none") == "none":
        settings = [FLAG_NAMES[k] for k in ("counts", "n_pix", "beta") if getattr(args, k)]
        if settings:
            raise GbsbiError(f"{', '.join(settings)} set the measurement of --theta maps: "
                             "pass --measurement fast or exact as well")
    for name, value in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.measurement is None:
        args.measurement = "none"
    return mode


def parse_theta(text: str) -> np.ndarray:
    """Parse ``D=..,sigma=..,c=..`` into (D, sigma, c), checking physical validity."""
    import math

    import numpy as np

    values = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in ("D", "sigma", "c"):
            raise GbsbiError(f"--theta: expected D=..,sigma=..,c=.., found {item!r}")
        try:
            values[key] = float(value)
        except ValueError:
            raise GbsbiError(f"--theta: {key}={value!r} is not a number") from None
        if not math.isfinite(values[key]):
            raise GbsbiError(f"--theta: {key} must be a finite number, got {value!r}")
    missing = [k for k in ("D", "sigma", "c") if k not in values]
    if missing:
        raise GbsbiError(f"--theta: missing {', '.join(missing)}")
    D, sigma, c = values["D"], values["sigma"], values["c"]
    if not D >= 0:
        raise GbsbiError(f"--theta: D must be >= 0 nm^2/s, got {D}")
    if not sigma > 0:
        raise GbsbiError(f"--theta: sigma must be > 0 J/m^2, got {sigma}")
    if not 0 <= c <= 1:
        raise GbsbiError(f"--theta: c must lie in [0, 1], got {c}")
    return np.array([D, sigma, c])


def _check_settings(args: argparse.Namespace) -> None:
    if args.n_pix < 2 or not 0 < args.beta <= 1:
        raise GbsbiError(f"need --n-pix >= 2 and 0 < --beta <= 1, got --n-pix {args.n_pix} "
                         f"and --beta {args.beta:g}")


def run(args: argparse.Namespace) -> int:
    from gbsbi.configuration import load_config

    mode = _mode(args)
    setup = load_config(args.config)
    if mode == "given":
        return _run_given(args, setup)
    if mode == "pseudo":
        return _run_pseudo(args, setup)
    return _run_bank(args, setup)


def _run_bank(args: argparse.Namespace, setup: Setup) -> int:
    from tqdm import tqdm

    from gbsbi.bank import BankSpec, simulate_bank
    from gbsbi.progress import progress_bar

    config = setup.config
    n = BANK_SIZE if args.n is None else args.n
    spec = BankSpec(config, setup.prior, n, args.seed, args.block_size, args.measurement,
                    setup.measurement, setup.sample)
    finished = []
    with progress_bar(spec.n, "simulate", "map", smoothing=0.1) as bar:

        def progress(k: int) -> None:
            finished.append(k)
            bar.update(k)

        try:
            content = simulate_bank(
                args.out, spec, resume=bool(args.resume), overwrite=args.overwrite,
                workers=args.workers, scheduler=args.scheduler, progress=progress,
                note=lambda line: tqdm.write(f"gbsbi simulate: note: {line}", file=sys.stderr),
            )
        except KeyboardInterrupt:
            bar.close()
            done = sum(finished)
            kept = ("finished blocks are kept, continue with the same command and --resume"
                    if done else "nothing was kept")
            print(f"gbsbi simulate: interrupted after {done} of {spec.n} maps; {kept}",
                  file=sys.stderr)
            return 130
    print(f"wrote {args.out}: {spec.n} maps of {config.n_frames} frames, content {content[:12]}")
    return 0


def _run_given(args: argparse.Namespace, setup: Setup) -> int:
    from gbsbi.given import simulate_given

    theta = parse_theta(args.theta)
    if args.temperature is None:
        raise GbsbiError("--theta needs --temperature K")
    n = 1 if args.n is None else args.n
    measurement = None
    if args.measurement != "none":
        _check_settings(args)
        measurement = {"mode": args.measurement, "counts": args.counts, "n_pix": args.n_pix,
                       "beta": args.beta}
    phis = simulate_given(args.out, theta, args.temperature, n, args.seed, setup.config,
                          setup.measurement, measurement, args.overwrite, setup.sample)
    values = ", ".join(f"{v:.3f}" for v in phis[:5])
    how = "" if measurement is None else f", {args.measurement} measurement"
    print(f"wrote {args.out}: {n} map(s){how}, Phi = {values}{' ...' if n > 5 else ''}")
    return 0


def _run_pseudo(args: argparse.Namespace, setup: Setup) -> int:
    import numpy as np

    from gbsbi.io.atomic import check_new
    from gbsbi.progress import progress_bar
    from gbsbi.pseudo import PseudoSpec, write_pseudo_experiments

    if args.measurement == "none":
        raise GbsbiError("pseudo-experiments (--groups) need --measurement fast or exact")
    _check_settings(args)
    check_new(args.out, args.overwrite)
    spec = PseudoSpec(args.groups, tuple(args.temperatures), args.repeats, args.counts,
                      args.n_pix, args.beta, args.measurement, args.seed)
    total = spec.groups * len(spec.temperatures) * spec.repeats
    with progress_bar(total, "pseudo-experiments", "map") as bar:
        maps, extra = write_pseudo_experiments(args.out, spec, setup.config, setup.prior,
                                               setup.measurement, progress=bar.update,
                                               sample=setup.sample)
    print(f"wrote {args.out}: {total} maps ({spec.groups} groups x {len(spec.temperatures)} "
          f"temperatures x {spec.repeats} repeats, {spec.mode} measurement)")
    with warnings.catch_warnings():  # an estimator NaN on every map gives a NaN median
        warnings.simplefilter("ignore", RuntimeWarning)
        errors = [np.nanmedian(np.abs(extra[k] - extra["phi_noiseless"]))
                  for k in ("phi", "phi_corrected", "phi_split_half")]
    print("Phi median |error| vs noiseless: plain {:.3f}, corrected {:.3f}, split-half {:.3f}"
          .format(*errors))
    return 0
