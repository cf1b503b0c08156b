"""``gbsbi misspec``: are the scans of a maps file like the model's simulations?"""

from __future__ import annotations

import argparse
import json

from gbsbi.cli.args import nonnegative_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "misspec",
        help="misspecification tests of a maps file against the model's simulations",
        description="Per scan, the p-value of its embedding f(x) under a density of f fitted "
        "on held-out simulations (sbi's calc_misspecification_logprob test), flagged below "
        "--alpha; for the whole file, sbi's MMD test on f (calc_misspecification_mmd). Writes "
        "DIR/misspec.json and DIR/misspec.png. `gbsbi train` fits the density into the model "
        "directory; for a model trained without it, --fit-reference BANK.h5 (the model's "
        "training bank) fits it on the same held-out split.",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="model directory from `gbsbi train`")
    p.add_argument("maps", metavar="MAPS.h5", nargs="?", help="maps file to test")
    p.add_argument("--out", metavar="DIR", help="output folder (with MAPS.h5)")
    p.add_argument("--fit-reference", metavar="BANK.h5",
                   help="fit the reference density into MODEL_DIR from its training bank")
    p.add_argument("--cache", metavar="DIR", help="folder to cache the bank's reduced inputs")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="seed of the MMD permutations (0)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace DIR, or a reference the model already has")
    p.set_defaults(func=run)


def _fit(args: argparse.Namespace) -> None:
    from gbsbi.errors import GbsbiError
    from gbsbi.inference.data import bank_inputs, read_bank_setup
    from gbsbi.inference.misspecification import META
    from gbsbi.inference.model import load_model
    from gbsbi.inference.pipeline import fit_and_save_reference
    from gbsbi.inference.training import split

    model = load_model(args.model)
    if (model.directory / META).exists() and not args.overwrite:
        raise GbsbiError(f"{model.directory} already has a misspecification reference; pass "
                         "--overwrite to fit it again")
    setup = read_bank_setup(args.fit_reference)
    if setup.content_hash != model.meta["bank"]["content_hash"]:
        raise GbsbiError(f"{args.fit_reference}: not the bank the model was trained on (content "
                         f"{setup.content_hash[:12]}, the model's "
                         f"{model.meta['bank']['content_hash'][:12]})")
    data = bank_inputs(args.fit_reference, model.spec.inputs, cache=args.cache)
    training = model.spec.training
    _, heldout = split(len(data.x), training.validation_fraction, training.seed)
    fit_and_save_reference(model, data.x[heldout.numpy()])


def run(args: argparse.Namespace) -> int:
    from gbsbi.errors import GbsbiError
    from gbsbi.io.atomic import check_new_folder

    if args.fit_reference is not None:
        _fit(args)
        if args.maps is None:
            return 0
    if args.maps is None or args.out is None:
        raise GbsbiError("give MAPS.h5 and --out DIR (or --fit-reference BANK.h5)")
    check_new_folder(args.out, args.overwrite)

    from gbsbi.inference.data import scan_inputs
    from gbsbi.inference.misspecification import (
        features,
        load_reference,
        log_density,
        scan_pvalues,
        set_test,
    )
    from gbsbi.inference.model import load_model
    from gbsbi.io.atomic import atomic_folder
    from gbsbi.io.posteriors import unique_names
    from gbsbi.misspec_plots import misspec_plot

    model = load_model(args.model)
    reference = load_reference(model)
    if reference is None:
        raise GbsbiError(f"{args.model}: the model has no misspecification reference; fit it "
                         "with --fit-reference BANK.h5 (its training bank)")
    scans = scan_inputs(args.maps, model.spec.experiment, model.spec.inputs)
    for note in scans.notes:
        print(note)
    f = features(model, scans.x)
    p = scan_pvalues(reference, f)
    names = unique_names(scans.maps.scan if scans.maps.scan is not None
                         else [f"map {k}" for k in range(len(p))])
    result = {"alpha": reference.alpha, "scans": {str(n): float(v) for n, v in zip(names, p,
                                                                                 strict=True)},
              "flagged": [str(n) for n, v in zip(names, p, strict=True) if v < reference.alpha],
              "flag_rate": float((p < reference.alpha).mean()), "reference": reference.meta,
              "model_hash": model.hash, "maps": str(args.maps), "maps_hash": scans.content_hash}
    if 2 <= len(p) < len(reference.features):
        result["set"] = set_test(reference, f, seed=args.seed)
    with atomic_folder(args.out, args.overwrite) as out:
        (out / "misspec.json").write_text(json.dumps(result, indent=1))
        misspec_plot(reference.log_probs.numpy(), log_density(reference.density, f).numpy(),
                     names, reference.alpha, out / "misspec.png")
    print(f"{len(result['flagged'])} of {len(p)} scans flagged (p < {reference.alpha:g}): "
          + (", ".join(result["flagged"][:10]) or "none")
          + (" ..." if len(result["flagged"]) > 10 else ""))
    if "set" in result:
        print(f"whole file: MMD {result['set']['mmd']:.4f}, p = {result['set']['p_value']:.3f}")
    print(f"wrote {args.out}")
    return 0
