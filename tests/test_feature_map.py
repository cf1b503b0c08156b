"""UMAP of feature vectors on a few hundred vectors: separate domains stay apart in the map,
mingled ones stay mingled, and the same seed gives the same coordinates."""

import numpy as np
import pytest

pytest.importorskip("umap")
from gbsbi.validation.features import own_label_share, umap_coordinates  # noqa: E402


def _clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """240 'simulated' and 60 'experimental' vectors in 8-D, the latter shifted by 6 sd."""
    rng = np.random.default_rng(seed)
    features = np.concatenate([rng.normal(0, 1, (240, 8)), rng.normal(6, 1, (60, 8))])
    return features, np.r_[np.zeros(240, bool), np.ones(60, bool)]


def test_umap_keeps_a_domain_gap_and_is_reproducible():
    features, experimental = _clusters()
    coords = umap_coordinates(features, seed=0)
    assert coords.shape == (300, 2) and coords.dtype == np.float32
    assert np.isfinite(coords).all()
    np.testing.assert_array_equal(coords, umap_coordinates(features, seed=0))
    # islands of their own: each experimental map's 10 neighbours are all experimental
    # (6 sd apart the clusters do not touch; 0.95 leaves room for a stray point or two)
    assert own_label_share(coords, experimental)[experimental].mean() > 0.95


def test_mingled_domains_share_their_neighbours():
    """Labels drawn at random over the same vectors: the share is near the chance level
    59/299 = 0.20; 0.35 is about 5 binomial standard errors of 60 x 10 neighbours above."""
    features, _ = _clusters()
    labels = np.random.default_rng(1).permutation(np.r_[np.zeros(240, bool), np.ones(60, bool)])
    coords = umap_coordinates(features, seed=0)
    share = own_label_share(coords, labels)[labels].mean()
    assert share < 0.35


def test_own_label_share_counts_neighbours_on_a_hand_example():
    coords = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [5.1, 0.0]])
    labels = np.array([0, 0, 1, 0])
    np.testing.assert_allclose(own_label_share(coords, labels, k=1), [1, 1, 0, 0])
    with pytest.raises(ValueError):
        umap_coordinates(np.zeros((3, 2)))
