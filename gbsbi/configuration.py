"""Reading the experiment configuration and prior from JSON, in the user's words.

The JSON layout is what ``gbsbi config --json`` prints: ``{"experiment": {...}, "prior":
{...}}``; either part may be left out (defaults apply) and any experiment key may be given
alone. The informational parts ``derived`` and ``constants`` of that output are ignored on
input, so the printed JSON can be edited and passed back. Unknown keys are errors that list
the known ones.
"""

from __future__ import annotations

import json
import os

from gbsbi.errors import GbsbiError
from simulators.config import ConfigError, ExperimentConfig, MeasurementPrior, Prior

Setup = tuple[ExperimentConfig, Prior, MeasurementPrior]


def load_config(path: str | os.PathLike | None) -> Setup:
    """The configuration, prior and measurement nuisances in a JSON file, or the defaults when
    ``path`` is None."""
    if path is None:
        return ExperimentConfig(), Prior(), MeasurementPrior()
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise GbsbiError(f"--config {path}: no such file") from None
    except (OSError, ValueError) as err:
        raise GbsbiError(f"--config {path}: not a readable JSON file ({err})") from None
    return parse_config(data, str(path))


def parse_config(data: dict, where: str = "configuration") -> Setup:
    """Build the setup from a dict of ``experiment``, ``prior`` and ``measurement`` parts."""
    if not isinstance(data, dict):
        raise GbsbiError(f"{where}: expected a JSON object, found {type(data).__name__}")
    unknown = sorted(set(data) - {"experiment", "prior", "measurement", "derived", "constants"})
    if unknown:
        raise GbsbiError(
            f"{where}: unknown configuration key(s) {', '.join(unknown)}; "
            "expected 'experiment', 'prior' and 'measurement'"
        )
    try:
        config = ExperimentConfig.from_dict(data.get("experiment", {}))
        prior = Prior.from_dict(data.get("prior", {}))
        measurement = MeasurementPrior.from_dict(data.get("measurement", {}))
    except (ConfigError, TypeError) as err:
        raise GbsbiError(f"{where}: {err}") from None
    return config, prior, measurement


def describe(config: ExperimentConfig, prior: Prior, measurement: MeasurementPrior) -> dict:
    """Configuration, prior, measurement and constants as one JSON-ready dict
    (``gbsbi config --json``)."""
    from simulators.config import K_B

    return {
        "experiment": config.to_dict(),
        "prior": prior.to_dict(),
        "measurement": measurement.to_dict(),
        "derived": {
            "frame_time_s": config.frame_time,
            "units": {
                "q": "nm^-1", "window": "s", "L": "nm", "W": "nm", "M": "m^4/(J s)",
                "h0": "nm", "temperature": "K",
                "measurement.counts": "photons per pixel per frame (log-uniform)",
                "measurement.n_pix": "pixels in the q-ROI (log-uniform)",
            },
        },
        "constants": {"k_B_J_per_K": K_B},
    }


def dumps(config: ExperimentConfig, prior: Prior, measurement: MeasurementPrior) -> str:
    return json.dumps(describe(config, prior, measurement), indent=2)
