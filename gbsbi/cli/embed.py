"""``gbsbi embed``: a UMAP of a model's feature vectors f(x) for simulated and experimental
maps, coloured by domain (the paper's Fig. 4b), for posterior and point models alike."""

from __future__ import annotations

import argparse

from gbsbi.cli.args import nonnegative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed",
        help="UMAP of a model's feature vectors: simulated against experimental maps",
        description="Compute the feature vectors f(x) of a trained model (posterior or point "
        "estimator) for every map of MAPS.h5 and for --n-sim maps drawn from BANK.h5 (default: "
        "the bank the model was trained on, as recorded in its model.json), project them "
        "together with UMAP and plot them coloured by domain (experimental maps by group). "
        "Islands of their own mean the model sees the experimental maps unlike any "
        "simulation; overlap means it does not. The PNG records the model's, the maps' and "
        "the bank's hashes.",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="model directory from `gbsbi train`")
    p.add_argument("maps", metavar="MAPS.h5", help="experimental maps file")
    p.add_argument("bank", metavar="BANK.h5", nargs="?",
                   help="simulation bank (default: the model's training bank)")
    p.add_argument("--out", required=True, metavar="UMAP.png", help="the figure (PNG)")
    p.add_argument("--n-sim", type=positive_int, default=1000,
                   help="simulated maps drawn from the bank (default 1000)")
    p.add_argument("--neighbors", type=positive_int, default=15,
                   help="UMAP's n_neighbors (default 15)")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="seed of the draw and of UMAP (0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing figure")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gbsbi.errors import GbsbiError
    from gbsbi.io.atomic import check_writable

    out = check_writable(args.out)
    if out.suffix.lower() != ".png":
        raise GbsbiError(f"--out {out}: the figure is a PNG, name it *.png")
    if out.exists() and not args.overwrite:
        raise GbsbiError(f"{out} exists; pass --overwrite to replace it")
    if args.n_sim < 2 or args.neighbors < 2 or args.seed < 0:
        raise GbsbiError("--n-sim and --neighbors must be at least 2, --seed at least 0")

    import numpy as np

    from gbsbi.diagnostics.feature_map import own_label_share, umap_coordinates
    from gbsbi.feature_plots import domains_figure
    from gbsbi.inference.data import bank_sample, scan_inputs
    from gbsbi.inference.model import load_model
    from gbsbi.io.atomic import atomic_path

    model = load_model(args.model)
    spec = model.spec
    bank = args.bank or model.meta.get("bank", {}).get("path")
    if args.bank is None and (bank is None or not Path(bank).exists()):
        raise GbsbiError(f"{args.model}: its training bank {bank} is not there; pass BANK.h5")
    scans = scan_inputs(args.maps, spec.experiment, spec.inputs)
    for note in scans.notes:
        print(note)
    x_s, _, setup = bank_sample(bank, spec.inputs, args.n_sim, args.seed)
    ours = spec.experiment.to_dict()
    for key, value in sorted(setup.config.to_dict().items()):
        if ours.get(key) != value:
            raise GbsbiError(f"{bank}: made with {key} = {value!r}, the model's configuration "
                             f"has {key} = {ours.get(key)!r}")
    features = model.features(np.concatenate([x_s, scans.x]))
    coords = umap_coordinates(features, args.seed, args.neighbors)
    simulated = np.r_[np.ones(len(x_s), bool), np.zeros(len(scans.x), bool)]
    k = min(10, max(1, len(scans.x) - 1))  # an experimental map's island holds m - 1 others
    share = own_label_share(coords, simulated, k)[~simulated].mean()
    chance = (len(scans.x) - 1) / (len(features) - 1)
    title = (f"{spec.estimator} model {model.hash[:8]}\n{len(scans.x)} experimental, "
             f"{len(x_s)} simulated maps")
    metadata = {"model_hash": model.hash, "maps_hash": scans.content_hash,
                "bank_content_hash": setup.content_hash, "n_sim": str(len(x_s)),
                "seed": str(args.seed), "neighbors": str(args.neighbors),
                "Software": "gbsbi embed"}
    with atomic_path(out) as tmp:
        domains_figure([(coords, simulated, scans.maps.group, title)], tmp, metadata)
    print(f"wrote {out}: UMAP of {len(features)} feature vectors; of an experimental map's {k} "
          f"nearest neighbours {share:.0%} are experimental on average (mingled domains: about "
          f"{chance:.0%}; islands of their own: near 100%)")
    return 0
