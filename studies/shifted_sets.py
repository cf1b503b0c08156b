"""Sets of maps with known theta, in the model and beyond it, for the robustness study
(studies/robustness.py). Every map has its own theta and temperature drawn from the prior and
is measured with the exact photon-counting model (0.05 photons per pixel per frame, 20,000
pixels, beta 0.2, as one beamtime).

In the model (its nuisances drawn from the configuration's ranges):
- ``in-model``: the polycrystal physics (POLYCRYSTAL: boundaries of several lengths and tilts,
  static scatterers; beam drift, dropped frames).

Effects the model carries as nuisances, at fixed values:
- ``boundaries``: three boundaries of 60, 100 and 150 nm;
- ``tilt``: three boundaries whose normals are at 60 degrees to q (cos phi = 0.5);
- ``static``: a static fraction of 0.25 (F -> f + (1 - f) F);
- ``drift``: a beam that fades to 40 % of its start over the window (slope -0.86);
- ``dropped``: 10 % of the frames dropped;
- ``grid``: 200 frames over the window, resampled to the model's 128.

Effects beyond the polycrystal physics (docs/physics.md), each on top of it:
- ``many-boundaries``: 16 boundaries with a log-normal length spread of 0.8 (beyond the
  ranges; S1);
- ``stretched``: a bulk decay exp(-(D q^2 tau)^g), g uniform in [0.5, 1.5] (stretched or
  compressed, as in glasses and ageing metals; S2);
- ``ageing``: a bulk rate that slows with age, D q^2 / (1 + t / t_a), t_a uniform in
  [0.2, 1] window lengths (S2, S4);
- ``intermittent``: rare events (3 per window on average, Poisson) each of which re-draws a
  fraction in [0.2, 0.5] of the scatterers: F is multiplied by (1 - a)^(events between t1 and
  t2), blocks along the diagonal (S3);
- ``position-drift``: the illuminated volume drifts steadily: F is multiplied by
  exp(-(tau / tau_v)^2), tau_v uniform in [1, 3] window lengths (B3);
- ``temperature-drift``: the bulk rate drifts linearly over the window,
  D(t) = D (1 + a (t / T_w - 1/2)), a uniform in [-0.5, 0.5] (B4);
- ``contrast-drift``: the share of incoherent background drifts, so C - 1 is multiplied by
  g(t1) g(t2), g(t) = 1 + b (t / T_w - 1/2), b uniform in [-0.5, 0.5] (B5; applied to the
  measured map, so its noise scales too).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from gbsbi.io.mapsfile import Maps
from simulators.config import ExperimentConfig, MeasurementPrior, Prior, SamplePrior
from simulators.gb import bulk_correlation
from simulators.measured import measured_maps
from simulators.measurement import measure
from simulators.polycrystal import sample_parts

IN_MODEL = ("in-model",)
MODELLED = ("boundaries", "tilt", "static", "drift", "dropped", "grid")
BEYOND = ("many-boundaries", "stretched", "ageing", "intermittent", "position-drift",
          "temperature-drift", "contrast-drift")
SETS = IN_MODEL + MODELLED + BEYOND
#: Each beyond-model set's effect strength, one number per map (0: no effect), in the unit of
#: the departure the model carries for it (docs/model.md#dynamics), where it has one.
STRENGTH = {
    "stretched": "g, the bulk's exponent (the model's stretch)",
    "ageing": "ln of the bulk rate's slowdown over the window, ln(1 + T_w / t_a) (the model's "
              "rate drift |a|)",
    "temperature-drift": "ln of the bulk rate's rise over the window, ln((1 + a/2) / (1 - a/2)) "
                         "(the model's rate drift a)",
    "position-drift": "T_w / tau_v, beam correlation lengths moved over the window (the "
                      "model's wander w)",
    "intermittent": "the decorrelation of all events, -m ln(1 - e) (the model's events x "
                    "-ln(1 - event_fraction))",
    "contrast-drift": "b, the slope of g(t) = 1 + b (t / T_w - 1/2), which multiplies C - 1 by "
                      "g(t1) g(t2): the contrast changes by ((1 + b/2) / (1 - b/2))^2 over the "
                      "window (not carried)",
}
COUNTS, N_PIX, BETA = 0.05, 20_000, 0.2
#: The in-model physics: a polycrystal with stationary dynamics.
POLYCRYSTAL = SamplePrior(boundaries=(1, 4), length_spread=(0.0, 0.8), tilt=(0.3, 1.0),
                          static=(0.0, 0.3), stretch=(1.0, 1.0), rate_drift=(0.0, 0.0),
                          wander=(0.0, 0.0), events=(0.0, 0.0))


def _nuisance(kind: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One map's nuisances: the default physics' draws, fixed where the set fixes them."""
    sample = POLYCRYSTAL.sample(1, rng)
    prior = MeasurementPrior()
    drift, dropped = rng.uniform(*prior.drift), rng.uniform(*prior.dropped)
    if kind == "boundaries":
        sample = {"lengths": np.array([[0.6, 1.0, 1.5]])}
    elif kind == "tilt":
        sample = {"lengths": np.ones((1, 3)), "tilt": np.full((1, 3), 0.5)}
    elif kind == "static":
        sample = {"lengths": np.ones((1, 1)), "static": np.array([0.25])}
    elif kind in ("drift", "dropped", "grid"):
        sample = {"lengths": np.ones((1, 1))}
        drift, dropped = (-0.86 if kind == "drift" else 0.0), (0.1 if kind == "dropped" else 0.0)
    elif kind == "many-boundaries":
        sample = {"lengths": np.exp(0.8 * rng.standard_normal((1, 16))),
                  "tilt": rng.uniform(0.3, 1.0, (1, 16))}
    return {"counts": np.array([COUNTS]), "n_pix": np.array([N_PIX]), "beta": np.array([BETA]),
            "drift": np.array([drift]), "dropped": np.array([dropped]), **sample}


def _rate_integral(kind: str, gamma: float, t: np.ndarray,
                   rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The bulk decay's exponent between frames, shape (T, T), for the sets whose bulk decay is
    not exp(-gamma |t2 - t1|), and the effect's strength (STRENGTH)."""
    window = t[-1] - t[0]
    if kind == "stretched":
        g = rng.uniform(0.5, 1.5)
        return (gamma * np.abs(t[:, None] - t[None, :])) ** g, g
    if kind == "ageing":
        t_a = rng.uniform(0.2, 1.0) * window
        g, strength = gamma * t_a * np.log1p((t - t[0]) / t_a), np.log1p(window / t_a)
    else:  # temperature-drift: rate gamma (1 + a (t / T_w - 1/2))
        a, s = rng.uniform(-0.5, 0.5), (t - t[0]) / window
        g, strength = gamma * window * (s + a * (s**2 - s) / 2), np.log((1 + a / 2) / (1 - a / 2))
    return np.abs(g[:, None] - g[None, :]), float(strength)


def _factor(kind: str, t: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The factor the whole F is multiplied by, shape (T, T), and the effect's strength
    (STRENGTH)."""
    window = t[-1] - t[0]
    if kind == "position-drift":
        tau_v = rng.uniform(1.0, 3.0) * window
        return np.exp(-((t[:, None] - t[None, :]) / tau_v) ** 2), float(window / tau_v)
    events = np.sort(rng.uniform(t[0], t[-1], rng.poisson(3)))  # intermittent
    segment = np.searchsorted(events, t)
    kept = 1 - rng.uniform(0.2, 0.5)
    return kept ** np.abs(segment[:, None] - segment[None, :]), float(len(events) * -np.log(kept))


def _map(kind: str, theta: np.ndarray, temperature: float, base: ExperimentConfig,
         rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """One map of set ``kind`` and its effect's strength (STRENGTH; NaN for the sets without
    one)."""
    config = replace(base, n_frames=200) if kind == "grid" else base
    nuisance = _nuisance(kind, rng)
    if kind in IN_MODEL + MODELLED or kind == "many-boundaries":
        return measured_maps(theta[None], np.array([temperature]), config, nuisance, "exact",
                             MeasurementPrior(), rng)["C"][0], np.nan
    real, imag = sample_parts(theta[None], np.array([temperature]), config, nuisance, rng)
    F = (real[0] + 1j * imag[0]).astype(np.complex128)
    if kind in ("stretched", "ageing", "temperature-drift"):  # replace the bulk term
        moving = (1 - nuisance.get("static", np.zeros(1))[0]) * (1 - theta[2])
        plain = bulk_correlation(theta[None, 0], config)[0].astype(np.float64)
        exponent, strength = _rate_integral(kind, theta[0] * config.q**2, config.t, rng)
        F += moving * (np.exp(-exponent) - plain)
    elif kind in ("intermittent", "position-drift"):
        factor, strength = _factor(kind, config.t, rng)
        F *= factor
    elif kind != "contrast-drift":
        raise ValueError(f"unknown set {kind!r}")
    setting = MeasurementPrior().setting(COUNTS, N_PIX, BETA, nuisance["drift"][0],
                                         nuisance["dropped"][0])
    C = measure(F, setting, rng).C
    if kind == "contrast-drift":
        t = config.t
        strength = rng.uniform(-0.5, 0.5)
        g = 1 + strength * ((t - t[0]) / (t[-1] - t[0]) - 0.5)
        C = 1 + np.outer(g, g) * (C - 1)
    return C, float(strength)


def simulate_set(kind: str, n: int, seed: int) -> Maps:
    """n maps of one set (module docstring), each with its own theta and T from the prior;
    maps of the ``grid`` set are binned to the model's 128 frames."""
    return simulate_set_with_strength(kind, n, seed)[0]


def simulate_set_with_strength(kind: str, n: int, seed: int) -> tuple[Maps, np.ndarray]:
    """The maps of :func:`simulate_set` (the same bytes) and each map's effect strength,
    shape (n,) (STRENGTH; NaN for the sets without one)."""
    from gbsbi.io.resample import resample

    if kind not in SETS:
        raise ValueError(f"unknown set {kind!r}; known: {', '.join(SETS)}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, SETS.index(kind)]))
    base, prior = ExperimentConfig(), Prior()
    theta, temperature = prior.sample(n, rng)
    maps, strength = [], np.full(n, np.nan)
    for k in range(n):
        C, strength[k] = _map(kind, theta[k], float(temperature[k]), base, rng)
        C = np.asarray(C, np.float64)
        if C.shape[-1] != base.n_frames:
            C = resample(C[None], base.n_frames)[0][0]
        maps.append(C.astype(np.float32))
    names = np.array([f"{kind}-{k + 1}" for k in range(n)])
    return Maps(np.stack(maps), base.t, temperature, np.full(n, base.q), scan=names,
                group=np.full(n, kind), theta=theta), strength
