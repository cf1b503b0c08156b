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

from simulators.config import ExperimentConfig

#: The sample keys of the departures (what :meth:`SamplePrior.sample` draws when they are on).
KEYS = ("stretch", "rate_drift", "wander", "events")


def has_dynamics(sample: dict[str, np.ndarray] | None) -> bool:
    """Whether ``sample`` holds any departure from the stationary model."""
    return sample is not None and any(key in sample for key in KEYS)


def bulk_term(D: np.ndarray, config: ExperimentConfig,
              sample: dict[str, np.ndarray] | None) -> np.ndarray | None:
    """F_eq with a stretched decay and a drifting rate (module docstring), shape (n, T, T),
    float32; None where ``sample`` has neither (the model's exp(-D q^2 |t2 - t1|))."""
    if sample is None or ("stretch" not in sample and "rate_drift" not in sample):
        return None
    D = np.asarray(D, dtype=np.float64)
    n = len(D)
    t = config.t
    window = t[-1] - t[0]
    s = (t - t[0]) / window
    a = np.broadcast_to(np.asarray(sample.get("rate_drift", 0.0), np.float64), (n,))[:, None]
    small = np.abs(a) < 1e-6
    safe = np.where(small, 1.0, a)
    shape = np.where(small, s[None, :], (np.exp(a * (s - 0.5)) - np.exp(-a / 2)) / safe)
    G = D[:, None] * config.q**2 * window * shape  # (n, T)
    lag = np.abs(G[:, :, None] - G[:, None, :])
    g = np.broadcast_to(np.asarray(sample.get("stretch", 1.0), np.float64), (n,))
    return np.exp(-(lag ** g[:, None, None])).astype(np.float32)


def decorrelation(config: ExperimentConfig,
                  sample: dict[str, np.ndarray] | None) -> np.ndarray | None:
    """The factor wander and intermittent events multiply F by (module docstring), shape
    (n, T, T), float32; None where ``sample`` has neither."""
    if sample is None or ("wander" not in sample and "events" not in sample):
        return None
    t = config.t
    window = t[-1] - t[0]
    lag = (t[:, None] - t[None, :]) / window
    factor = None
    if "wander" in sample:
        w = np.asarray(sample["wander"], np.float64)
        factor = np.exp(-(w[:, None, None] * lag[None]) ** 2)
    if "events" in sample:
        times = np.asarray(sample["events"], np.float64)  # (n, E), relative, NaN: none
        before = (times[:, None, :] < ((t - t[0]) / window)[None, :, None]).sum(axis=2)
        apart = np.abs(before[:, :, None] - before[:, None, :])
        kept = 1 - np.asarray(sample["event_fraction"], np.float64)
        blocks = kept[:, None, None] ** apart
        factor = blocks if factor is None else factor * blocks
    return factor.astype(np.float32)

