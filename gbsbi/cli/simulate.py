"""``gbsbi simulate``: simulation banks over the prior, or maps for given parameters."""

from __future__ import annotations

import argparse
import sys

import numpy as np
from tqdm import tqdm

from gbsbi.bank import BankSpec, block_rng, simulate_bank
from gbsbi.configuration import load_config
from gbsbi.errors import GbsbiError
from gbsbi.io.mapsfile import Maps, write_maps
from gbsbi.summaries.phi import phi
from simulators.config import config_hash
from simulators.gb import two_time_maps


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate a bank of maps over the prior, or maps for given parameters",
        description="Simulate two-time maps. Without --theta: a bank of N maps with parameters "
        "drawn from the prior, resumable after an interruption (--resume) and parallel "
        "(--workers, --scheduler). With --theta: maps for the given parameters.",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="output HDF5 file")
    p.add_argument("--n", type=int, help="number of maps (default 2000; 1 with --theta)")
    p.add_argument("--seed", type=int, default=0, help="root random seed (default 0)")
    p.add_argument("--config", metavar="FILE", help="JSON configuration (see `gbsbi config`)")
    p.add_argument("--block-size", type=int, default=256, help="maps per block (default 256)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask distributed scheduler address")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument(
        "--theta", metavar="D=..,sigma=..,c=..",
        help="simulate these parameters (D in nm^2/s, sigma in J/m^2, c in [0, 1]) instead of "
        "drawing from the prior; --n gives the number of replicates (default 1 here)",
    )
    p.add_argument("--temperature", type=float, metavar="K", help="temperature for --theta")
    p.set_defaults(func=run)


def parse_theta(text: str) -> np.ndarray:
    """Parse ``D=..,sigma=..,c=..`` into (D, sigma, c), checking physical validity."""
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


def run(args: argparse.Namespace) -> int:
    config, prior = load_config(args.config)
    if args.theta is not None:
        return _run_given(args, config)
    if args.temperature is not None:
        raise GbsbiError("--temperature is only used with --theta (banks draw T from the prior)")
    spec = BankSpec(config, prior, 2000 if args.n is None else args.n, args.seed, args.block_size)
    bar = tqdm(total=spec.n, unit="map", desc="simulate", disable=None, smoothing=0.1)
    try:
        content = simulate_bank(
            args.out, spec, resume=args.resume, overwrite=args.overwrite,
            workers=args.workers, scheduler=args.scheduler, progress=bar.update,
        )
    except KeyboardInterrupt:
        bar.close()
        print(
            f"interrupted after {bar.n} of {spec.n} maps; finished blocks are kept, "
            f"continue with the same command and --resume", file=sys.stderr,
        )
        return 130
    bar.close()
    print(f"wrote {args.out}: {spec.n} maps of {config.n_frames} frames, content {content[:12]}")
    return 0


def _run_given(args: argparse.Namespace, config) -> int:
    theta = parse_theta(args.theta)
    if args.temperature is None:
        raise GbsbiError("--theta needs --temperature K")
    if not args.temperature > 0:
        raise GbsbiError(f"--temperature must be > 0 K, got {args.temperature}")
    n = 1 if args.n is None else args.n
    if n < 1:
        raise GbsbiError(f"--n must be at least 1, got {n}")
    thetas = np.tile(theta, (n, 1))
    temperature = np.full(n, args.temperature)
    maps = two_time_maps(thetas, temperature, config, block_rng(args.seed, 0))
    text = config_json_given(config, theta, args.temperature, n, args.seed)
    out = Maps(maps, config.t, temperature, np.full(n, config.q), theta=thetas)
    write_maps(
        args.out, out,
        attrs={"kind": "given", "config": text, "config_hash": config_hash(text),
               "seed": args.seed, "phi": phi(maps)},
    )
    values = ", ".join(f"{v:.3f}" for v in phi(maps)[:5])
    print(f"wrote {args.out}: {n} map(s), Phi = {values}{' ...' if n > 5 else ''}")
    return 0


def config_json_given(config, theta: np.ndarray, temperature: float, n: int, seed: int) -> str:
    import json

    data = {"experiment": config.to_dict(), "theta": theta.tolist(),
            "temperature": temperature, "n": n, "seed": seed}
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
