"""``gbsbi crosscheck``: emcee on Phi alone against an NPE on (Phi, T), and what the map adds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gbsbi.cli.args import nonnegative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "crosscheck",
        help="emcee with the Phi surrogate's likelihood against NPEs, per scan",
        description="For each scan, sample p(u | Phi_corr, T) with emcee through the model's "
        "Phi surrogate (walkers, burn-in and thinning from the autocorrelation time; R-hat and "
        "bulk ESS from ArviZ), compare it by C2ST (sbi.utils.metrics.c2st) with an NPE "
        "trained on (Phi_corr, T) only, and compare that with the model's map-based "
        "posterior. The Phi-only NPE is trained on the model's bank (--bank, default the path "
        "in model.json) and saved in DIR/phi_npe, or reused with --phi-npe. Writes "
        "DIR/crosscheck.json, DIR/crosscheck.png and DIR/overlay_<scan>.png.",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="model directory from `gbsbi train`")
    p.add_argument("maps", metavar="MAPS.h5", help="maps file")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--bank", metavar="BANK.h5", help="the model's training bank")
    p.add_argument("--phi-npe", metavar="DIR", help="reuse a Phi-only NPE (a DIR/phi_npe)")
    p.add_argument("--scans", type=positive_int, metavar="N", help="the first N scans only")
    p.add_argument("--draws", type=positive_int, default=2000,
                   help="draws of each NPE per scan, and C2ST set size (default 2000)")
    p.add_argument("--cache", metavar="DIR", help="folder to cache the bank's reduced inputs")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR")
    p.set_defaults(func=run)


def _phi_npe(args: argparse.Namespace, model, log):  # noqa: ANN001, ANN202
    """The Phi-only NPE: reused, or trained on the model's bank (returns flow, meta, new)."""
    from gbsbi.errors import GbsbiError
    from gbsbi.inference.crosscheck import PhiNpeConfig, load_phi_npe, phi_inputs, train_phi_npe
    from gbsbi.inference.data import bank_inputs, read_bank_setup

    bank_hash = model.meta["bank"]["content_hash"]
    if args.phi_npe is not None:
        flow, meta = load_phi_npe(args.phi_npe, bank_hash)
        return flow, meta, False
    bank = args.bank or model.meta["bank"]["path"]
    if not Path(bank).exists():
        raise GbsbiError(f"the model's bank {bank} is not here; pass --bank BANK.h5 or "
                         "--phi-npe DIR")
    if read_bank_setup(bank).content_hash != bank_hash:
        raise GbsbiError(f"{bank}: not the bank the model was trained on")
    data = bank_inputs(bank, model.spec.inputs, cache=args.cache)
    pairs, defined = phi_inputs(data.x, model.spec.inputs.bins)
    config = PhiNpeConfig()
    log(f"training the Phi-only NPE on {int(defined.sum())} maps of {bank}")
    flow, history = train_phi_npe(pairs[defined], data.u[defined], config)
    meta = {**config.to_dict(), "bank": str(bank), "bank_hash": bank_hash,
            "n": int(defined.sum()), "history": history}
    return flow, meta, True


def run(args: argparse.Namespace) -> int:
    from gbsbi.errors import GbsbiError
    from gbsbi.io.atomic import check_new_folder

    check_new_folder(args.out, args.overwrite)
    if args.draws < 100:
        raise GbsbiError(f"--draws must be at least 100, got {args.draws}")

    import numpy as np
    import torch

    from gbsbi.crosscheck_plots import c2st_plot, overlay_plot
    from gbsbi.inference.check import _scale
    from gbsbi.inference.crosscheck import (
        EmceeConfig,
        PhiNpeConfig,
        c2st_score,
        phi_inputs,
        phi_log_likelihood,
        run_emcee,
        save_phi_npe,
    )
    from gbsbi.inference.data import scan_inputs
    from gbsbi.inference.device import configure
    from gbsbi.inference.flow import FlowConfig, unit_box
    from gbsbi.inference.model import load_model
    from gbsbi.inference.posterior import GbPosterior
    from gbsbi.inference.training import TrainConfig
    from gbsbi.io.atomic import atomic_folder
    from gbsbi.io.posteriors import unique_names
    from gbsbi.posterior_plots import safe_name

    configure("cpu")
    model = load_model(args.model)
    scans = scan_inputs(args.maps, model.spec.experiment, model.spec.inputs)
    for note in scans.notes:
        print(note)
    count = len(scans.x) if args.scans is None else min(args.scans, len(scans.x))
    names = unique_names(scans.maps.scan if scans.maps.scan is not None
                         else [f"map {k}" for k in range(len(scans.x))])[:count]
    phi_flow, phi_meta, trained = _phi_npe(args, model, print)
    from sbi.inference import DirectPosterior

    phi_posterior = DirectPosterior(phi_flow, unit_box())
    map_posterior = GbPosterior(model)
    pairs, defined = phi_inputs(scans.x, model.spec.inputs.bins)
    offset, width = _scale(model)
    emcee_config = EmceeConfig()
    rng = np.random.default_rng(args.seed)
    results, figures = {}, {}
    for k, name in enumerate(names):
        if not defined[k]:
            results[str(name)] = {"skipped": "Phi_corr is undefined (a map of nothing but "
                                             "noise): no Phi likelihood"}
            continue
        phi, t = float(pairs[k, 0]), float(pairs[k, 1])
        log_prob = phi_log_likelihood(model.surrogate, phi, t)
        mc = run_emcee(log_prob, rng.random((emcee_config.walkers, 3)), emcee_config,
                       seed=args.seed + k)
        u_mc = mc.samples.reshape(-1, 3)
        torch.manual_seed(args.seed + k)
        u_phi = phi_posterior.sample((args.draws,), x=torch.as_tensor(pairs[k]),
                                     show_progress_bars=False).numpy()
        u_map = map_posterior.unit.sample((args.draws,), x=torch.as_tensor(scans.x[k]),
                                          show_progress_bars=False).numpy()
        results[str(name)] = {
            "phi_corrected": phi, "temperature": float(scans.maps.temperature[k]),
            "emcee": mc.to_dict(),
            "c2st_emcee_vs_phi_npe": c2st_score(u_mc, u_phi, args.seed),
            "c2st_map_vs_phi_npe": c2st_score(u_map, u_phi, args.seed),
        }
        r = results[str(name)]
        print(f"{name}: Phi_corr {phi:.3f}, emcee {mc.steps} steps (tau max "
              f"{mc.tau.max():.0f}, R-hat max {mc.rhat.max():.4f}, ESS min "
              f"{mc.ess_bulk.min():.0f}, {mc.seconds:.1f} s); C2ST emcee vs Phi-NPE "
              f"{r['c2st_emcee_vs_phi_npe']:.3f}, map vs Phi-NPE {r['c2st_map_vs_phi_npe']:.3f}")
        figures[str(name)] = {label: offset + draws * width for label, draws in (
            ("emcee (Phi only)", u_mc), ("NPE on (Phi, T)", u_phi),
            ("NPE on the map", u_map))}
    done = [n for n in results if "skipped" not in results[n]]
    summary = {}
    if done:
        for key in ("c2st_emcee_vs_phi_npe", "c2st_map_vs_phi_npe"):
            values = np.array([results[n][key] for n in done])
            summary[key] = {"median": float(np.median(values)), "max": float(values.max())}
        summary["emcee_seconds"] = {"mean": float(np.mean([results[n]["emcee"]["seconds"]
                                                           for n in done])),
                                    "max": float(max(results[n]["emcee"]["seconds"]
                                                     for n in done))}
        summary["rhat_max"] = float(max(max(results[n]["emcee"]["rhat"]) for n in done))
        summary["ess_bulk_min"] = float(min(min(results[n]["emcee"]["ess_bulk"])
                                            for n in done))
    output = {"scans": results, "summary": summary, "emcee": emcee_config.to_dict(),
              "phi_npe": {k: v for k, v in phi_meta.items() if k != "history"},
              "model": str(args.model), "model_hash": model.hash, "maps": str(args.maps),
              "maps_hash": scans.content_hash, "seed": args.seed}
    with atomic_folder(args.out, args.overwrite) as out:
        (out / "crosscheck.json").write_text(json.dumps(output, indent=1))
        for name, sets in figures.items():
            r = results[name]
            title = (f"{name}: Phi_corr = {r['phi_corrected']:.3f}, T = {r['temperature']:.0f}"
                     f" K; C2ST emcee vs Phi-NPE {r['c2st_emcee_vs_phi_npe']:.2f}, map vs "
                     f"Phi-NPE {r['c2st_map_vs_phi_npe']:.2f}")
            overlay_plot(sets, title, out / f"overlay_{safe_name(name)}.png")
        if done:
            c2st_plot(done, [results[n]["c2st_emcee_vs_phi_npe"] for n in done],
                      [results[n]["c2st_map_vs_phi_npe"] for n in done], out / "crosscheck.png")
        if trained:
            save_phi_npe(out / "phi_npe", phi_flow, PhiNpeConfig(
                FlowConfig(**phi_meta["flow"]), TrainConfig(**phi_meta["training"])),
                {k: phi_meta[k] for k in ("bank", "bank_hash", "n")}, phi_meta["history"])
    print(f"wrote {args.out}")
    return 0
