"""Reading the experiment configuration and prior from JSON, in the user's words.

The JSON layout is what ``gbsbi config --json`` prints: ``{"experiment": {...}, "prior":
{...}, "measurement": {...}, "sample": {...}}``; any part may be left out (defaults apply) and
any key may be given alone. The informational parts ``derived`` and ``constants`` of that
output are ignored on input, so the printed JSON can be edited and passed back. Unknown keys are
errors that list the known ones.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import NamedTuple

from gbsbi.errors import GbsbiError
from simulators.config import ConfigError, ExperimentConfig, MeasurementPrior, Prior, SamplePrior

#: The parts of a configuration file.
PARTS = ("experiment", "prior", "measurement", "sample")


class Setup(NamedTuple):
    """What fixes a simulation: the experiment, the prior, and the nuisances of the
    measurement and of the sample (a polycrystal's boundaries)."""

    config: ExperimentConfig
    prior: Prior
    measurement: MeasurementPrior
    sample: SamplePrior


def load_config(path: str | os.PathLike | None) -> Setup:
    """The configuration, prior and measurement nuisances in a JSON file, or the defaults when
    ``path`` is None."""
    if path is None:
        return Setup(ExperimentConfig(), Prior(), MeasurementPrior(), SamplePrior())
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise GbsbiError(f"--config {path}: no such file") from None
    except (OSError, ValueError) as err:
        raise GbsbiError(f"--config {path}: not a readable JSON file ({err})") from None
    return parse_config(data, str(path))


def parse_config(data: dict, where: str = "configuration") -> Setup:
    """Build the setup from a dict of ``experiment``, ``prior``, ``measurement`` and
    ``sample`` parts."""
    if not isinstance(data, dict):
        raise GbsbiError(f"{where}: expected a JSON object, found {type(data).__name__}")
    unknown = sorted(set(data) - {*PARTS, "derived", "constants"})
    if unknown:
        raise GbsbiError(
            f"{where}: unknown configuration key(s) {', '.join(unknown)}; "
            "expected 'experiment', 'prior', 'measurement' and 'sample'"
        )
    try:
        return Setup(ExperimentConfig.from_dict(data.get("experiment", {})),
                     Prior.from_dict(data.get("prior", {})),
                     MeasurementPrior.from_dict(data.get("measurement", {})),
                     SamplePrior.from_dict(data.get("sample", {})))
    except (ConfigError, TypeError) as err:
        raise GbsbiError(f"{where}: {err}") from None


def describe(setup: Setup) -> dict:
    """Configuration, prior, nuisances and constants as one JSON-ready dict
    (``gbsbi config --json``)."""
    from simulators.config import K_B

    config = setup.config
    return {
        "experiment": config.to_dict(),
        "prior": setup.prior.to_dict(),
        "measurement": setup.measurement.to_dict(),
        # every key, the departures' share too (to_dict leaves a share of 1 out of hashes)
        "sample": dataclasses.asdict(setup.sample),
        "derived": {
            "frame_time_s": config.frame_time,
            "units": {
                "q": "nm^-1", "window": "s", "L": "nm", "W": "nm", "M": "m^4/(J s)",
                "h0": "nm", "temperature": "K",
                "measurement.counts": "photons per pixel per frame (log-uniform)",
                "measurement.n_pix": "pixels in the q-ROI (log-uniform)",
                "measurement.drift": "slope a of b(t) = 1 + a (t / window - 1/2) (uniform)",
                "measurement.dropped": "fraction of dropped frames (uniform)",
                "sample.boundaries": "boundaries in the scattering volume (whole, uniform)",
                "sample.length_spread": "log-normal spread of their lengths around L "
                                        "(uniform)",
                "sample.departure_share": "share of the maps that carry the dynamics' "
                                          "departures (stretch, rate_drift, wander, events)",
                "sample.departure_draw": "together: a map carries all four departures or "
                                         "none; each: each on by itself with that share",
            },
        },
        "constants": {"k_B_J_per_K": K_B},
    }


def dumps(setup: Setup) -> str:
    return json.dumps(describe(setup), indent=2)
