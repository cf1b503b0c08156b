r"""Dynamics the stationary model lacks, as nuisances (docs/model.md#dynamics).

Each departure is a cheap change of F drawn per map from
:class:`~simulators.config.SamplePrior`; all of them off, F is the model's to the byte.

- A stretched or compressed bulk decay, and a bulk rate that drifts over the window (a
  temperature drift, or ageing): with s = (t - t_0) / T_w and the rate
  gamma(t) = D q^2 exp(a (s - 1/2)),

  .. math::

      F_{eq}(t_1, t_2) = \exp\left(-\left|G(t_2) - G(t_1)\right|^g\right),
      \qquad G(t) = \int_{t_0}^{t} \gamma(t')\, dt' ,

  g the stretching exponent (g < 1 stretched, g > 1 compressed, [docs/physics.md S2]) and a the
  log-rate slope (a = 0: a steady rate).
- The illuminated volume wanders steadily (position drift, docs/physics.md B3): F is multiplied
  by exp(-(w (t_2 - t_1) / T_w)^2), w the distance travelled over the window in units of the
  beam's correlation length.
- Intermittent events (docs/physics.md S3): at Poisson times in the window each event re-draws
  a fraction e of the scatterers, so F is multiplied by (1 - e)^m, m the number of events
  between t_1 and t_2: blocks along the diagonal.

Every factor is a positive-definite kernel in time, so F stays a correlation matrix.
"""

from __future__ import annotations

import numpy as np

from simulators.config import NO_DEPARTURE, ExperimentConfig
from simulators.gb import bulk_correlation


def has_dynamics(sample: dict[str, np.ndarray] | None) -> bool:
    """Whether any map of ``sample`` departs from the stationary model (keys of a share of
    maps without departures hold g = 1, a = 0, w = 0 and no events)."""
    if sample is None:
        return False
    if any(np.any(np.asarray(sample[k]) != v) for k, v in NO_DEPARTURE.items() if k in sample):
        return True
    return "events" in sample and bool(np.any(~np.isnan(np.asarray(sample["events"],
                                                                    np.float64))))


def bulk_term(D: np.ndarray, config: ExperimentConfig,
              sample: dict[str, np.ndarray] | None) -> np.ndarray | None:
    """F_eq with a stretched decay and a drifting rate (module docstring), shape (n, T, T),
    float32; None where ``sample`` has neither (the model's exp(-D q^2 |t2 - t1|)). Maps with
    g = 1 and a = 0 (a share of the maps without departures) get the model's F_eq to the
    byte."""
    if sample is None or ("stretch" not in sample and "rate_drift" not in sample):
        return None
    D = np.asarray(D, dtype=np.float64)
    n = len(D)
    a = np.broadcast_to(np.asarray(sample.get("rate_drift", 0.0), np.float64), (n,))
    g = np.broadcast_to(np.asarray(sample.get("stretch", 1.0), np.float64), (n,))
    out = bulk_correlation(D, config)
    rows = np.flatnonzero((g != 1) | (a != 0))
    if len(rows) == 0:
        return out
    t = config.t
    window = t[-1] - t[0]
    s = (t - t[0]) / window
    a = a[rows, None]
    small = np.abs(a) < 1e-6
    safe = np.where(small, 1.0, a)
    shape = np.where(small, s[None, :], (np.exp(a * (s - 0.5)) - np.exp(-a / 2)) / safe)
    G = D[rows, None] * config.q**2 * window * shape  # (rows, T)
    lag = np.abs(G[:, :, None] - G[:, None, :])
    out[rows] = np.exp(-(lag ** g[rows, None, None]))
    return out


def decorrelation(config: ExperimentConfig,
                  sample: dict[str, np.ndarray] | None) -> np.ndarray | None:
    """The factor wander and intermittent events multiply F by (module docstring), shape
    (n, T, T), float32; None where ``sample`` has neither, 1 for maps without either."""
    if sample is None or ("wander" not in sample and "events" not in sample):
        return None
    t = config.t
    window = t[-1] - t[0]
    lag = (t[:, None] - t[None, :]) / window
    n = len(sample["wander"] if "wander" in sample else sample["events"])
    w = np.asarray(sample.get("wander", np.zeros(n)), np.float64)
    times = np.asarray(sample.get("events", np.full((n, 1), np.nan)), np.float64)  # relative
    wanders, jumps = w != 0, ~np.isnan(times).all(axis=1)
    rows = np.flatnonzero(wanders | jumps)
    factor = np.ones((n, len(t), len(t)), dtype=np.float32)
    if len(rows) == 0:
        return factor
    part = np.ones((len(rows), len(t), len(t)))  # float64, rounded once at the end
    part *= np.exp(-(w[rows, None, None] * lag[None]) ** 2)
    before = (times[rows, None, :] < ((t - t[0]) / window)[None, :, None]).sum(axis=2)
    apart = np.abs(before[:, :, None] - before[:, None, :])
    kept = 1 - np.asarray(sample.get("event_fraction", np.zeros(n)), np.float64)[rows]
    part *= kept[:, None, None] ** apart
    factor[rows] = part
    return factor
