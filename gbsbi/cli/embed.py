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
    from gbsbi.validation.features import embed_to_files

    embed_to_files(args.model, args.maps, args.out, bank=args.bank, n_sim=args.n_sim,
                   neighbors=args.neighbors, seed=args.seed, overwrite=args.overwrite)
    return 0
