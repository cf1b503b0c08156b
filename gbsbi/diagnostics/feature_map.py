r"""Two-dimensional maps of feature vectors f(x) by UMAP (McInnes et al. 2018; paper Fig. 4b).

Simulated and experimental maps that a model sees alike have feature vectors that mingle in
the map; a domain gap shows as separate islands. UMAP keeps neighbourhoods, not distances:
how far apart two islands lie means little, whether they overlap is the point. The features
are projected as they are (the space CORAL aligns), all domains in one fit.
"""

from __future__ import annotations

import warnings

import numpy as np


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
