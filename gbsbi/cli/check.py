"""``gbsbi check``: calibration and accuracy of a model on simulations with known parameters."""

from __future__ import annotations

import argparse
import json

from gbsbi.cli.args import nonnegative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="calibration and accuracy of a model on held-out simulations",
        description="Sample the model's posterior for simulations with known parameters (a "
        "bank from `gbsbi simulate` never used in training, or pseudo-experiments) and write "
        "to DIR: check.json (R^2 and RMSE of the posterior mean of D, log10 sigma and c; 90% "
        "coverage and width; expected coverage of central intervals per parameter and of the "
        "joint highest-density region; SBC with sbi's run_sbc/check_sbc; TARP with "
        "run_tarp/check_tarp), check.npz (per simulation), coverage.png, sbc_ranks.png, "
        "tarp.png and predicted.png.",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="model directory from `gbsbi train`")
    p.add_argument("test", metavar="TEST.h5", help="held-out bank or pseudo-experiments")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--n", type=positive_int, default=1000,
                   help="simulations to check, the first N of the file (default 1000)")
    p.add_argument("--draws", type=positive_int, default=1000, help="draws per simulation (1000)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default 0)")
    p.add_argument("--cache", metavar="DIR", help="folder to cache a bank's reduced inputs")
    p.add_argument("--overwrite", action="store_true", help="replace DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gbsbi.errors import GbsbiError
    from gbsbi.io.atomic import check_new_folder

    check_new_folder(args.out, args.overwrite)
    if args.n < 2:
        raise GbsbiError(f"--n must be at least 2, got {args.n}")
    if args.draws < 10:
        raise GbsbiError(f"--draws must be at least 10, got {args.draws}")

    import numpy as np

    from gbsbi.check_plots import coverage_plot, predicted_plot, sbc_plot, tarp_plot
    from gbsbi.inference.check import run_check
    from gbsbi.inference.data import labelled_inputs
    from gbsbi.inference.device import configure
    from gbsbi.inference.model import load_model
    from gbsbi.io.atomic import atomic_folder

    model = load_model(args.model)
    spec = model.spec
    x, u, content = labelled_inputs(args.test, spec.experiment, spec.prior, spec.inputs,
                                    cache=args.cache)
    x, u = x[: args.n], u[: args.n]
    configure("cpu")
    result = run_check(model, x, u, draws=args.draws, seed=args.seed)
    numbers = result.to_dict()
    numbers["configuration"] = {"model": str(args.model), "model_hash": model.hash,
                                "test": str(args.test), "test_hash": content,
                                "n": len(x), "draws": args.draws, "seed": args.seed}
    with atomic_folder(args.out, args.overwrite) as out:
        (out / "check.json").write_text(json.dumps(numbers, indent=1))
        np.savez(out / "check.npz", truth=result.truth, mean=result.mean, low=result.low,
                 high=result.high, rank=result.rank, hpd=result.hpd)
        coverage_plot(numbers, out / "coverage.png")
        sbc_plot(result.rank, result.draws, out / "sbc_ranks.png")
        tarp_plot(numbers, out / "tarp.png")
        predicted_plot(result.truth, result.mean, result.low, result.high, numbers["r2"],
                       out / "predicted.png")
    names = numbers["parameters"]
    print(f"{len(x)} simulations x {args.draws} draws in {result.seconds['total']:.1f} s")
    for k, name in enumerate(names):
        print(f"  {name:<12} R^2 {numbers['r2'][k]:6.3f}  RMSE {numbers['rmse'][k]:9.3g}  "
              f"90% coverage {numbers['coverage_90'][k]:.3f}  SBC KS p "
              f"{numbers['sbc']['ks_pvals'][k]:.3f}")
    hpd = dict(zip(numbers["levels"], numbers["hpd_coverage"], strict=True))
    print(f"  joint HPD coverage at 0.5 / 0.9: {hpd[0.5]:.3f} / {hpd[0.9]:.3f}; TARP ATC "
          f"{numbers['tarp']['atc']:+.3f}, KS p {numbers['tarp']['ks_pvalue']:.3f}")
    print(f"wrote {args.out}")
    return 0
