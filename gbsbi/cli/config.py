"""``gbsbi config``: print the experiment configuration and the prior."""

import argparse
import dataclasses


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config",
        help="print the experiment configuration and the prior",
        description="Print the experiment configuration, the prior and every constant. The "
        "JSON output can be edited and passed back with --config to other commands.",
    )
    p.add_argument("--json", action="store_true", help="print JSON (the default is a table)")
    p.add_argument("--config", metavar="FILE", help="a JSON configuration to check and show")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gbsbi.configuration import dumps, load_config

    setup = load_config(args.config)
    config, prior, measurement, sample = setup
    if args.json:
        print(dumps(setup))
        return 0
    print("experiment configuration")
    for key, value in config.to_dict().items():
        print(f"  {key:<18} {value}")
    print(f"  {'frame_time':<18} {config.frame_time:g} s")
    print("prior")
    for p in prior.parameters:
        print(f"  {p.name:<6} {p.scale:<7} [{p.low:g}, {p.high:g}] {p.unit}  ({p.description})")
    lo, hi = prior.temperature
    print(f"  {'T':<6} {'linear':<7} [{lo:g}, {hi:g}] K  (condition, not inferred)")
    print("measurement nuisances (banks with --measurement fast|exact)")
    for key, value in measurement.to_dict().items():
        print(f"  {key:<18} {value}")
    print("sample nuisances (a polycrystal's boundaries, every bank)")
    for key, value in dataclasses.asdict(sample).items():
        print(f"  {key:<18} {value}")
    return 0
