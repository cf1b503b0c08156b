r"""Two-dimensional maps of feature vectors f(x) by UMAP (McInnes et al. 2018; paper Fig. 4b).

Simulated and experimental maps that a model sees alike have feature vectors that mingle in
the map; a domain gap shows as separate islands. UMAP keeps neighbourhoods, not distances:
how far apart two islands lie means little, whether they overlap is the point. The features
are projected as they are (the space CORAL aligns), all domains in one fit.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gbsbi.errors import GbsbiError


def umap_coordinates(features: np.ndarray, seed: int = 0, neighbors: int = 15) -> np.ndarray:
    """UMAP coordinates of feature vectors.

    Args:
        features: f(x), shape (n, F), n >= 4.
        seed: UMAP's ``random_state``; the same seed gives the same coordinates (UMAP then
            runs on one thread).
        neighbors: UMAP's ``n_neighbors`` (at most n - 1 is used).

    Returns:
        Coordinates, shape (n, 2), float32.
    """
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or len(features) < 4:
        raise ValueError(f"UMAP needs features of shape (n >= 4, F), got {features.shape}")
    with warnings.catch_warnings():  # numba's and umap's notices about threads and seeds
        warnings.simplefilter("ignore")
        import umap

        reducer = umap.UMAP(n_neighbors=min(neighbors, len(features) - 1), random_state=seed)
        return reducer.fit_transform(features).astype(np.float32)


def own_label_share(coords: np.ndarray, labels: np.ndarray, k: int = 10) -> np.ndarray:
    """Each point's share of its k nearest neighbours (in the 2-D map) that carry its label.

    For the experimental maps among n points, m of them experimental, it is about
    (m - 1) / (n - 1) where the domains mingle and near 1 where the experimental maps form
    islands of their own.

    Args:
        coords: coordinates, shape (n, 2).
        labels: a label per point, shape (n,).
        k: neighbours counted (at most n - 1).

    Returns:
        Shares in [0, 1], shape (n,).
    """
    coords, labels = np.asarray(coords, dtype=np.float64), np.asarray(labels)
    d = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    near = np.argsort(d, axis=1)[:, : min(k, len(coords) - 1)]
    return (labels[near] == labels[:, None]).mean(axis=1)


def embed_to_files(
    model_dir: str | os.PathLike, maps: str | os.PathLike, out: str | os.PathLike, *,
    bank: str | os.PathLike | None = None, n_sim: int = 1000, neighbors: int = 15,
    seed: int = 0, overwrite: bool = False, log: Callable[[str], None] = print,
) -> float:
    """``gbsbi embed``: the UMAP figure of a model's feature vectors for the maps of ``maps``
    and ``n_sim`` maps drawn from ``bank`` (default: the model's training bank); returns the
    mean share of an experimental map's nearest neighbours that are experimental."""
    from gbsbi.inference.data import bank_sample, scan_inputs
    from gbsbi.inference.model import load_model
    from gbsbi.io.atomic import atomic_path, check_writable
    from gbsbi.plots.features import domains_figure

    out = check_writable(out)
    if out.suffix.lower() != ".png":
        raise GbsbiError(f"--out {out}: the figure is a PNG, name it *.png")
    if out.exists() and not overwrite:
        raise GbsbiError(f"{out} exists; pass --overwrite to replace it")
    if n_sim < 2 or neighbors < 2 or seed < 0:
        raise GbsbiError("--n-sim and --neighbors must be at least 2, --seed at least 0")
    model = load_model(model_dir)
    spec = model.spec
    given = bank is not None
    bank = bank or model.meta.get("bank", {}).get("path")
    if not given and (bank is None or not Path(bank).exists()):
        raise GbsbiError(f"{model_dir}: its training bank {bank} is not there; pass BANK.h5")
    scans = scan_inputs(maps, spec.experiment, spec.inputs)
    for note in scans.notes:
        log(note)
    x_s, _, setup = bank_sample(bank, spec.inputs, n_sim, seed)
    ours = spec.experiment.to_dict()
    for key, value in sorted(setup.config.to_dict().items()):
        if ours.get(key) != value:
            raise GbsbiError(f"{bank}: made with {key} = {value!r}, the model's configuration "
                             f"has {key} = {ours.get(key)!r}")
    features = model.features(np.concatenate([x_s, scans.x]))
    coords = umap_coordinates(features, seed, neighbors)
    simulated = np.r_[np.ones(len(x_s), bool), np.zeros(len(scans.x), bool)]
    k = min(10, max(1, len(scans.x) - 1))  # an experimental map's island holds m - 1 others
    share = float(own_label_share(coords, simulated, k)[~simulated].mean())
    chance = (len(scans.x) - 1) / (len(features) - 1)
    title = (f"{spec.kind} model {model.hash[:8]}\n{len(scans.x)} experimental, "
             f"{len(x_s)} simulated maps")
    metadata = {"model_hash": model.hash, "maps_hash": scans.content_hash,
                "bank_content_hash": setup.content_hash, "n_sim": str(len(x_s)),
                "seed": str(seed), "neighbors": str(neighbors), "Software": "gbsbi embed"}
    with atomic_path(out) as tmp:
        domains_figure([(coords, simulated, scans.maps.group, title)], tmp, metadata)
    log(f"wrote {out}: UMAP of {len(features)} feature vectors; of an experimental map's {k} "
        f"nearest neighbours {share:.0%} are experimental on average (mingled domains: about "
        f"{chance:.0%}; islands of their own: near 100%)")
    return share
