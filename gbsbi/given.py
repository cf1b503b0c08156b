"""Maps for given parameters (``gbsbi simulate --theta``): replicates of one theta at one
temperature, noiseless or measured at fixed settings, with every Phi."""

from __future__ import annotations

import json
import os

import numpy as np

from gbsbi.bank import block_rng
from gbsbi.io.atomic import check_new
from gbsbi.io.mapsfile import Maps, write_maps
from gbsbi.summaries.phi import phi
from gbsbi.summaries.phi_noise import phi_corrected
from simulators.config import ExperimentConfig, MeasurementPrior, SamplePrior, config_hash
from simulators.measured import measured_maps
from simulators.polycrystal import noiseless_maps


def simulate_given(
    out: str | os.PathLike, theta: np.ndarray, temperature: float, n: int, seed: int,
    config: ExperimentConfig, nuisance: MeasurementPrior, measurement: dict | None = None,
    overwrite: bool = False, sample: SamplePrior | None = None,
) -> np.ndarray:
    """Simulate n replicates of theta = (D, sigma, c) at ``temperature`` K into the maps file
    ``out``; returns their plain Phi.

    Args:
        measurement: None for noiseless maps, else ``mode`` (``fast`` or ``exact``),
            ``counts``, ``n_pix`` and ``beta``; the file then also holds the half-maps and the
            corrected, noiseless and split-half Phi.
        sample: each replicate's boundaries are drawn from it (a polycrystal), or None for
            one boundary of length L.
    """
    check_new(out, overwrite)
    thetas = np.tile(theta, (n, 1))
    temperatures = np.full(n, float(temperature))
    rng = block_rng(seed, 0)
    drawn = None if sample is None else sample.sample(n, rng)
    if measurement is None:
        maps = noiseless_maps(thetas, temperatures, config, drawn, rng)
        extra = {"phi": phi(maps)}
    else:
        measurement = {**measurement, "fixed": nuisance.to_dict()}
        fixed = {"counts": np.full(n, measurement["counts"]),
                 "n_pix": np.full(n, measurement["n_pix"]),
                 "beta": np.full(n, measurement["beta"])}
        made = measured_maps(thetas, temperatures, config, {**fixed, **(drawn or {})},
                             measurement["mode"], nuisance, rng)
        maps = made["C"]
        extra = {"C_half_a": made["C_a"], "C_half_b": made["C_b"], "phi": phi(maps),
                 "phi_corrected": phi_corrected(maps), "phi_noiseless": phi(made["C_noiseless"]),
                 "phi_split_half": phi(made["C_a"], made["C_b"])}
    text = config_json_given(config, theta, temperature, n, seed, measurement, sample)
    write_maps(out, Maps(maps, config.t, temperatures, np.full(n, config.q), theta=thetas),
               extra=extra, attrs={"kind": "given", "config": text,
                                   "config_hash": config_hash(text), "seed": seed})
    return extra["phi"]


def config_json_given(
    config: ExperimentConfig,
    theta: np.ndarray,
    temperature: float,
    n: int,
    seed: int,
    measurement: dict | None = None,
    sample: SamplePrior | None = None,
) -> str:
    """Canonical JSON of what determines maps simulated for given parameters."""
    data = {"experiment": config.to_dict(), "theta": theta.tolist(),
            "temperature": temperature, "n": n, "seed": seed}
    if measurement is not None:
        data["measurement"] = measurement
    if sample is not None:
        data["sample"] = sample.to_dict()
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
