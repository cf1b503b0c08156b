"""Pseudo-experiments: measured maps with known parameters, the stand-in for a beamtime.

Groups play the materials or grain sizes of an experiment: each group has one theta = (D,
sigma, c) drawn from the prior, measured at every temperature, several times. The maps go
through a measurement model (``exact`` photon-counting speckle by default) with fixed nuisances
(mean counts per pixel per frame, N_pix, beta), as one beamtime would have.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gbsbi.io.mapsfile import Maps
from gbsbi.summaries.phi import phi
from gbsbi.summaries.phi_noise import phi_corrected
from simulators.config import ExperimentConfig, MeasurementPrior, Prior, SamplePrior
from simulators.measured import measured_maps


@dataclass(frozen=True)
class PseudoSpec:
    """What a set of pseudo-experiments is made of.

    Attributes:
        groups: number of groups G (one theta each).
        temperatures: temperatures in K, each group is measured at all of them.
        repeats: maps per group and temperature.
        counts: mean photon counts per pixel per frame.
        n_pix: pixels in the q-ROI.
        beta: speckle contrast.
        mode: measurement model, ``exact`` or ``fast``.
        seed: root seed.
        arrhenius: each group is a material whose D follows the Arrhenius law over the
            temperatures, D(T) = D_ref exp(-Ea / k_B (1/T - 1/T_ref)), with D_ref and Ea drawn
            from :class:`gbsbi.group.config.GroupPrior` (every D(T) inside the prior) and
            sigma, c from the prior; False: one theta per group at every temperature.
    """

    groups: int = 3
    temperatures: tuple[float, ...] = (300.0, 350.0, 400.0, 450.0)
    repeats: int = 5
    counts: float = 0.05
    n_pix: int = 20_000
    beta: float = 0.2
    mode: str = "exact"
    seed: int = 0
    arrhenius: bool = False

    def to_json(self, config: ExperimentConfig, prior: Prior, nuisance: MeasurementPrior,
                sample: SamplePrior | None = None) -> str:
        data = {"experiment": config.to_dict(), "prior": prior.to_dict(),
                "measurement": nuisance.to_dict(), "pseudo": {
                    k: list(v) if isinstance(v, tuple) else v
                    for k, v in self.__dict__.items()}}
        if sample is not None:
            data["sample"] = sample.to_dict()
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def pseudo_experiments(
    spec: PseudoSpec,
    config: ExperimentConfig,
    prior: Prior,
    nuisance: MeasurementPrior,
    progress: Callable[[int], None] | None = None,
    sample: SamplePrior | None = None,
) -> tuple[Maps, dict[str, np.ndarray]]:
    """Simulate the pseudo-experiments of ``spec``.

    Args:
        spec: groups, temperatures, repeats, measurement.
        config: the experiment configuration.
        prior: the prior the groups' parameters are drawn from.
        nuisance: fixed measurement constants (beam_rms, dead and dropped fractions), and the
            ranges each map's beam drift and dropped frames are drawn from.
        progress: called with 1 after each map, or None.
        sample: the ranges each map's boundaries are drawn from (a polycrystal), or None for
            one boundary of length L.

    Returns:
        The maps (with theta, groups and scan names) and extra datasets: ``C_half_a``,
        ``C_half_b`` (n, T, T), ``phi``, ``phi_split_half``, ``phi_corrected``,
        ``phi_noiseless`` (n,).
    """
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed))
    group_theta, _ = prior.sample(spec.groups, rng)
    law = _materials(spec, prior, rng) if spec.arrhenius else None
    rows, maps, thetas = [], [], []
    for g in range(spec.groups):
        for j, temperature in enumerate(spec.temperatures):
            theta = group_theta[g : g + 1].copy()
            if law is not None:
                theta[0, 0] = law[g, j]
            for r in range(spec.repeats):
                fixed = {"counts": np.array([spec.counts]), "n_pix": np.array([spec.n_pix]),
                         "beta": np.array([spec.beta])}
                fixed |= {"drift": _draw(nuisance.drift, rng),
                          "dropped": _draw(nuisance.dropped, rng)}
                if sample is not None:
                    fixed |= sample.sample(1, rng)
                maps.append(measured_maps(theta, np.array([temperature]),
                                          config, fixed, spec.mode, nuisance, rng))
                rows.append((g, temperature, r))
                thetas.append(theta[0])
                if progress is not None:
                    progress(1)
    stack = {key: np.concatenate([m[key] for m in maps]) for key in maps[0]}
    n = len(rows)
    result = Maps(
        stack["C"], config.t, np.array([row[1] for row in rows]), np.full(n, config.q),
        scan=np.array([f"g{g + 1}-T{t:g}-r{r + 1}" for g, t, r in rows]),
        group=np.array([f"group-{g + 1}" for g, _, _ in rows]),
        theta=np.array(thetas),
    )
    extra = {
        "C_half_a": stack["C_a"], "C_half_b": stack["C_b"], "phi": phi(stack["C"]),
        "phi_split_half": phi(stack["C_a"], stack["C_b"]),
        "phi_corrected": phi_corrected(stack["C"]), "phi_noiseless": phi(stack["C_noiseless"]),
    }
    return result, extra


def _materials(spec: PseudoSpec, prior: Prior, rng: np.random.Generator) -> np.ndarray:
    """D of each group at each temperature, shape (groups, temperatures), from an Arrhenius law
    with D_ref and Ea uniform over the group prior, redrawn until every D lies inside the
    prior."""
    from gbsbi.group.config import GroupPrior
    from gbsbi.group.law import K_B_EV

    group_prior = GroupPrior()
    inverse = 1 / np.asarray(spec.temperatures) - 1 / group_prior.t_ref
    out = np.empty((spec.groups, len(spec.temperatures)))
    low, high = prior.parameters[0].low, prior.parameters[0].high
    for g in range(spec.groups):
        while True:
            d_ref = rng.uniform(*group_prior.d_ref)
            ea = rng.uniform(*group_prior.ea)
            D = d_ref * np.exp(-ea / K_B_EV * inverse)
            if np.all((D >= low) & (D <= high)):
                break
        out[g] = D
    return out


def _draw(bounds: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """One uniform draw in [low, high], shape (1,); a degenerate range draws nothing."""
    low, high = bounds
    return np.array([low if low == high else low + rng.random() * (high - low)])


def write_pseudo_experiments(
    path: str | os.PathLike,
    spec: PseudoSpec,
    config: ExperimentConfig,
    prior: Prior,
    nuisance: MeasurementPrior,
    progress: Callable[[int], None] | None = None,
    sample: SamplePrior | None = None,
) -> tuple[Maps, dict[str, np.ndarray]]:
    """Simulate the pseudo-experiments of ``spec`` and write them as a maps file, with the
    configuration (JSON), its hash and the seed as root attributes.

    Returns:
        What :func:`pseudo_experiments` returns.
    """
    from gbsbi.io.mapsfile import write_maps
    from simulators.config import config_hash

    maps, extra = pseudo_experiments(spec, config, prior, nuisance, progress=progress,
                                     sample=sample)
    text = spec.to_json(config, prior, nuisance, sample)
    write_maps(path, maps, extra=extra, attrs={
        "kind": "pseudo-experiments", "config": text, "config_hash": config_hash(text),
        "seed": spec.seed})
    return maps, extra
