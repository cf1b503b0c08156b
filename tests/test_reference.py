"""The exact simulator against the Euler-Maruyama reference of simulators/reference.py."""

import numpy as np

from gbsbi.summaries.phi import phi
from simulators.config import ExperimentConfig
from simulators.gb import two_time_maps
from simulators.reference import reference_map


def test_cold_boundary_relaxes_identically():
    """At T -> 0 both relax the initial sine deterministically. They differ by their grids
    (midpoints vs finite-difference nodes: a quadrature error of order 1/N_x in the phase
    average) and by the finite-difference eigenvalue of mode 1 (relative (pi dx/L)^2/12 < 1e-4).
    So the maps agree to 2e-3 at N_x = 64 and the difference halves when N_x doubles."""
    theta = np.array([1e-4, 1.0, 0.4])
    diffs = []
    for n_x in (64, 128):
        config = ExperimentConfig(n_frames=24, window=600.0, n_x=n_x)
        exact = two_time_maps(theta[None], np.array([1e-9]), config, np.random.default_rng(0))
        ref = reference_map(theta, 1e-9, config, np.random.default_rng(0))
        diffs.append(np.abs(exact[0] - ref).max())
        assert abs(phi(exact[0]) - phi(ref)) < 0.01
    assert diffs[0] < 2e-3
    assert diffs[1] < 0.6 * diffs[0]


def test_thermal_roughening_converges_to_the_exact_model():
    """A flat boundary roughening at 400 K (q = 4 nm^-1, so the GB decorrelates by about 0.1).
    The finite-difference reference converges to the continuum as its grid is refined (its
    grid-scale modes carry too much variance, an O(1/N_x) error), so the ensemble-mean maps'
    largest difference must shrink from N_x = 31 to 63 and be below 0.012 at 63. The standard
    error of each difference (64 reference maps, 2000 exact ones) is about 0.002; seeds are
    fixed."""
    theta = np.array([0.0, 0.03, 1.0])
    diffs = []
    for n_x in (31, 63):
        config = ExperimentConfig(n_frames=12, window=300.0, h0=0.0, n_x=n_x, n_modes=n_x, q=4.0)
        rng = np.random.default_rng(1)
        ref = np.mean([reference_map(theta, 400.0, config, rng, 0.02) for _ in range(64)], 0)
        exact = two_time_maps(np.tile(theta, (2000, 1)), np.full(2000, 400.0), config,
                              np.random.default_rng(2)).mean(axis=0)
        assert 1.2 - exact[0, -1] > 0.05  # the test has a signal to compare
        diffs.append(np.abs(exact - ref).max())
    assert diffs[1] < 0.8 * diffs[0]
    assert diffs[1] < 0.012
