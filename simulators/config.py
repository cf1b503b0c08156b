"""Experiment configuration and prior of the grain-boundary model, as frozen dataclasses.

Units used throughout: lengths in nm, times in s, q in nm^-1, D in nm^2/s, sigma in J/m^2, the
GB mobility M in m^4/(J s) (the unit of the materials literature), temperature in K.

Both classes serialise to JSON (:meth:`to_dict`, :meth:`from_dict`) and carry a content hash
(:func:`config_hash`) stored with every artefact they produce. Unknown keys are rejected.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

import numpy as np

#: Boltzmann constant in J/K.
K_B = 1.380649e-23


class ConfigError(ValueError):
    """A configuration value or key is invalid."""


def _from_dict(cls: type, data: dict, where: str) -> object:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown {where} key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(names))}"
        )
    return cls(**data)


@dataclass(frozen=True)
class ExperimentConfig:
    """Fixed constants of one XPCS experiment and of the GB model (docs/model.md#constants).

    Attributes:
        q: momentum transfer component q_z normal to the boundary, nm^-1.
        n_frames: number of frames T of the two-time map.
        window: duration of the observation window, s; frame k is at t_k = k * window / T.
        beta: speckle contrast of the Siegert relation C = 1 + beta |F|^2.
        L: boundary length between the pinning triple junctions, nm.
        W: boundary width along y, nm.
        M: GB mobility, m^4/(J s).
        h0: amplitude of the initial out-of-equilibrium shape h(x, 0) = h0 sin(pi x / L), nm.
        n_x: grid points along the boundary for the phase average.
        n_modes: number of sine modes of the boundary.
        equilibrium_start: if true, the modes start from their stationary distribution (plus the
            h0 sine); the paper's model starts from the bare sine (false).
    """

    q: float = 1.0
    n_frames: int = 128
    window: float = 2000.0
    beta: float = 0.2
    L: float = 100.0
    W: float = 20.0
    M: float = 1.0e-17
    h0: float = 10.0
    n_x: int = 64
    n_modes: int = 32
    equilibrium_start: bool = False

    def __post_init__(self) -> None:
        for name in ("q", "window", "beta", "L", "W", "M"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.h0 < 0:
            raise ConfigError(f"h0 must be non-negative, got {self.h0}")
        for name in ("n_frames", "n_x", "n_modes"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 2:
                raise ConfigError(f"{name} must be an integer >= 2, got {getattr(self, name)}")

    @property
    def frame_time(self) -> float:
        """Spacing between frames, s."""
        return self.window / self.n_frames

    @property
    def t(self) -> np.ndarray:
        """Frame times t_k in s, shape (T,), float64."""
        return np.arange(self.n_frames) * self.frame_time

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ExperimentConfig:
        return _from_dict(cls, data, "experiment configuration")


@dataclass(frozen=True)
class ParameterSpec:
    """Prior of one parameter: uniform in the parameter (linear) or in its logarithm (log)."""

    name: str
    low: float
    high: float
    scale: str
    unit: str
    description: str

    def __post_init__(self) -> None:
        if self.scale not in ("linear", "log"):
            raise ConfigError(f"{self.name}: scale must be 'linear' or 'log', got {self.scale!r}")
        if not self.high > self.low:
            raise ConfigError(f"{self.name}: high ({self.high}) must exceed low ({self.low})")
        if self.scale == "log" and self.low <= 0:
            raise ConfigError(f"{self.name}: a log-scale range needs low > 0, got {self.low}")

    def sample(self, u: np.ndarray) -> np.ndarray:
        """Map uniform numbers u in [0, 1) to prior draws."""
        if self.scale == "log":
            return np.exp(np.log(self.low) + u * (np.log(self.high) - np.log(self.low)))
        return self.low + u * (self.high - self.low)

    def to_unit(self, value: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`sample`: values normalised to [0, 1] on the prior's scale."""
        value = np.asarray(value, dtype=np.float64)
        if self.scale == "log":
            return (np.log(value) - np.log(self.low)) / (np.log(self.high) - np.log(self.low))
        return (value - self.low) / (self.high - self.low)

    def to_scale(self, value: np.ndarray) -> np.ndarray:
        """Values on the scale the prior is uniform on, in reports: log10 for a log scale."""
        value = np.asarray(value, dtype=np.float64)
        return np.log10(value) if self.scale == "log" else value

    def log_jacobian(self, value: np.ndarray) -> np.ndarray:
        """log |du / dvalue| of :meth:`to_unit` (finite for value > 0 on a log scale)."""
        value = np.asarray(value, dtype=np.float64)
        if self.scale == "log":
            return -np.log(value) - np.log(np.log(self.high) - np.log(self.low))
        return np.full(value.shape, -np.log(self.high - self.low))


def _default_parameters() -> tuple[ParameterSpec, ...]:
    return (
        ParameterSpec("D", 0.0, 5e-4, "linear", "nm^2/s", "bulk diffusivity"),
        ParameterSpec("sigma", 0.03, 3.0, "log", "J/m^2", "GB stiffness"),
        ParameterSpec("c", 0.0, 0.5, "linear", "1", "effective GB concentration"),
    )


@dataclass(frozen=True)
class Prior:
    """Prior over theta = (D, sigma, c), with the temperature T and the window's age t_w as
    known conditions.

    Attributes:
        parameters: one :class:`ParameterSpec` per inferred parameter, in the order of theta.
        temperature: (low, high) range of T in K for simulation banks, drawn uniformly.
        age: (low, high) range of the age t_w in s of a window (the time since the start of the
            measurement at its first frame, docs/model.md#age). (0, 4000) s, the default,
            holds the windows at 0, 2000 and 4000 s of a measurement three windows long;
            (0, 0): every window starts at the initial shape and no age is drawn (FRESH).
        age_zero: the share of windows drawn at age 0 exactly (a measurement's first window),
            the rest uniform over ``age``. 0.5 by default: the young windows, where the
            boundary still carries sigma and c, get half of a bank that uniform ages would
            spend mostly on relaxed ones, and a model with ages then reads fresh maps within
            0.01-0.02 of the R^2 of one without (studies/results/long_measurements.md); 0
            draws nothing for it. Ignored (0) without ages.
    """

    parameters: tuple[ParameterSpec, ...] = field(default_factory=_default_parameters)
    temperature: tuple[float, float] = (300.0, 500.0)
    age: tuple[float, float] = (0.0, 4000.0)
    age_zero: float = 0.5

    def __post_init__(self) -> None:
        params = tuple(
            p if isinstance(p, ParameterSpec) else ParameterSpec(**p) for p in self.parameters
        )
        object.__setattr__(self, "parameters", params)
        object.__setattr__(self, "temperature", tuple(float(v) for v in self.temperature))
        if [p.name for p in params] != ["D", "sigma", "c"]:
            raise ConfigError(f"prior parameters must be D, sigma, c; got {self.names}")
        lo, hi = self.temperature
        if not 0 < lo <= hi:
            raise ConfigError(f"temperature range must satisfy 0 < low <= high, got ({lo}, {hi})")
        object.__setattr__(self, "age", _range("prior age", self.age, 0, np.inf, False))
        object.__setattr__(self, "age_zero", float(self.age_zero) if self.aged else 0.0)
        if not 0 <= self.age_zero < 1:
            raise ConfigError(f"prior age_zero must be in [0, 1), got {self.age_zero}")

    @property
    def aged(self) -> bool:
        """Whether windows have ages (the network then sees the age as an input)."""
        return self.age != (0.0, 0.0)

    def sample_age(self, n: int, rng: np.random.Generator) -> np.ndarray | None:
        """n ages in s, shape (n,): uniform over ``age``, a share ``age_zero`` of them 0;
        None (nothing drawn) without ages."""
        if not self.aged:
            return None
        age = _uniform(self.age, n, rng)
        if self.age_zero > 0:
            age[rng.random(n) < self.age_zero] = 0.0
        return age

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def low(self) -> np.ndarray:
        return np.array([p.low for p in self.parameters])

    @property
    def high(self) -> np.ndarray:
        return np.array([p.high for p in self.parameters])

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw parameters and temperatures.

        Args:
            n: number of draws.
            rng: the source of randomness.

        Returns:
            theta, shape (n, 3), float64, and temperature T in K, shape (n,), float64.
        """
        u = rng.random((n, len(self.parameters) + 1))
        theta = np.stack([p.sample(u[:, k]) for k, p in enumerate(self.parameters)], axis=1)
        lo, hi = self.temperature
        return theta, lo + u[:, -1] * (hi - lo)

    def to_unit(self, theta: np.ndarray) -> np.ndarray:
        """theta normalised to [0, 1] per parameter on its prior scale, shape (..., 3)."""
        theta = np.asarray(theta, dtype=np.float64)
        return np.stack([p.to_unit(theta[..., k]) for k, p in enumerate(self.parameters)], -1)

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`to_unit`: theta of u in the unit cube, shape (..., 3)."""
        u = np.asarray(u, dtype=np.float64)
        return np.stack([p.sample(u[..., k]) for k, p in enumerate(self.parameters)], -1)

    def to_scale(self, theta: np.ndarray) -> np.ndarray:
        """theta on the prior's scale, (D, log10 sigma, c): the scale of accuracy and
        coverage figures; shape (..., 3)."""
        theta = np.asarray(theta, dtype=np.float64)
        return np.stack([p.to_scale(theta[..., k]) for k, p in enumerate(self.parameters)], -1)

    def scale_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of each parameter on the prior's scale (:meth:`to_scale`), shape (3,)."""
        return (np.array([float(p.to_scale(p.low)) for p in self.parameters]),
                np.array([float(p.to_scale(p.high)) for p in self.parameters]))

    def log_jacobian(self, theta: np.ndarray) -> np.ndarray:
        """sum_k log |du_k / dtheta_k| of :meth:`to_unit`, shape (...): the density of u times
        exp(this) is the density of theta."""
        theta = np.asarray(theta, dtype=np.float64)
        return sum(p.log_jacobian(theta[..., k]) for k, p in enumerate(self.parameters))

    def contains(self, theta: np.ndarray) -> np.ndarray:
        """Whether each theta (shape (..., 3)) lies inside the prior's support."""
        theta = np.asarray(theta, dtype=np.float64)
        return np.all((theta >= self.low) & (theta <= self.high), axis=-1)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        if not self.aged:  # as before age_zero existed: the same configuration hashes
            del out["age_zero"]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Prior:
        return _from_dict(cls, data, "prior")

    @classmethod
    def from_record(cls, data: dict) -> Prior:
        """The prior a bank or model recorded: one recorded before ages existed had none, and
        one recorded before ``age_zero`` drew its ages uniformly."""
        return _from_dict(cls, {"age": (0.0, 0.0), "age_zero": 0.0, **data}, "prior")


def _log_uniform(bounds: tuple[float, float], u: np.ndarray) -> np.ndarray:
    """Map uniform numbers u in [0, 1) to log-uniform draws between the bounds."""
    low, high = np.log(bounds[0]), np.log(bounds[1])
    return np.exp(low + u * (high - low))


def _range(where: str, value: tuple, low: float, high: float, open_ends: bool) -> tuple:
    """A (low, high) range checked to lie in [low, high] (or (low, high) with open ends)."""
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be (low, high), got {value!r}") from None
    inside = (low < a and b < high) if open_ends else (low <= a and b < high)
    if not (np.isfinite(a) and np.isfinite(b) and a <= b and inside):
        ends = "()" if open_ends else "[)"
        raise ConfigError(f"{where} must be (low, high) with low <= high inside "
                          f"{ends[0]}{low:g}, {high:g}{ends[1]}, got ({a:g}, {b:g})")
    return (a, b)


def _uniform(bounds: tuple[float, float], n: int, rng: np.random.Generator) -> np.ndarray:
    """n uniform draws in [low, high]; a degenerate range draws nothing from ``rng``."""
    low, high = bounds
    if low == high:
        return np.full(n, low)
    return low + rng.random(n) * (high - low)


#: The value of each continuous departure of the dynamics that is no departure (g, a, w).
NO_DEPARTURE = {"stretch": 1.0, "rate_drift": 0.0, "wander": 0.0}
#: The four departures of the dynamics, each switched on or off as one.
DEPARTURES = (*NO_DEPARTURE, "events")
#: How a share of the maps carries the departures (SamplePrior.departure_draw).
DEPARTURE_DRAWS = ("together", "each")


def _stationary(draws: dict[str, np.ndarray], off: np.ndarray,
                keys: tuple[str, ...] = DEPARTURES) -> None:
    """Set the departures ``keys`` of the maps where ``off`` (n,) to the stationary model's
    values, in place."""
    for key, value in NO_DEPARTURE.items():
        if key in keys and key in draws:
            draws[key][off] = value
    if "events" in keys and "events" in draws:
        draws["events"][off] = np.nan
        draws["event_count"][off] = 0


def _event_times(rate: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson event times in the window, relative (0 to 1), shape (n, E) with E the most
    events of any map (at least 1), NaN past a map's count; ``rate`` (n,) events per window."""
    counts = rng.poisson(rate)
    times = np.full((len(rate), max(1, int(counts.max(initial=0)))), np.nan)
    for k, m in enumerate(counts):
        times[k, :m] = np.sort(rng.random(m))
    return times


def config_hash(text: str) -> str:
    """SHA-256 hex digest of a canonical JSON text."""
    return hashlib.sha256(text.encode()).hexdigest()


def _check_fixed(where: str, beam_rms: float, dead_fraction: float, drop_fraction: float) -> None:
    """The constants a measurement shares with its prior: fractions in [0, 1)."""
    for name, value in (("beam_rms", beam_rms), ("dead_fraction", dead_fraction),
                        ("drop_fraction", drop_fraction)):
        if not 0 <= value < 1:
            raise ConfigError(f"{where}{name} must lie in [0, 1), got {value}")


@dataclass(frozen=True)
class MeasurementConfig:
    """Constants of one photon-counting measurement (``simulators.measurement``).

    Attributes:
        nbar: mean photon counts per pixel per frame, nbar > 0.
        n_pix: number of pixels N_pix in the q-ROI, dead ones included.
        beta: speckle contrast beta in (0, 1]; see simulators.measurement for non-integer
            1 / beta.
        beam_rms: relative rms of the lognormal beam intensity b(t), 0 for a steady beam.
        dead_fraction: fraction of the pixels that are dead (rounded to a whole number).
        drop_fraction: fraction of the frames that are dropped (rounded to a whole number).
        drift: slope a of a linear beam-intensity drift over the window,
            b(t) = 1 + a (t / window - 1/2), |a| < 2 (0: none).
    """

    nbar: float = 0.05
    n_pix: int = 20_000
    beta: float = 0.2
    beam_rms: float = 0.0
    dead_fraction: float = 0.0
    drop_fraction: float = 0.0
    drift: float = 0.0

    def __post_init__(self) -> None:
        if not self.nbar > 0:
            raise ConfigError(f"nbar must be positive, got {self.nbar}")
        if not 0.0 < self.beta <= 1.0:
            raise ConfigError(f"beta must lie in (0, 1], got {self.beta}")
        _check_fixed("", self.beam_rms, self.dead_fraction, self.drop_fraction)
        if not abs(self.drift) < 2:
            raise ConfigError(f"drift must lie in (-2, 2) (the beam stays positive), got "
                              f"{self.drift}")
        if self.n_pix - round(self.dead_fraction * self.n_pix) < 2:
            raise ConfigError(f"need at least 2 live pixels, got n_pix = {self.n_pix}")


@dataclass(frozen=True)
class MeasurementPrior:
    """Nuisances of the measurement, for banks simulated as measured (``--measurement``).

    Attributes:
        counts: (low, high) mean photon counts per pixel per frame, drawn log-uniformly.
        n_pix: (low, high) number of pixels of the q-ROI, drawn log-uniformly and rounded.
        beta: (low, high) speckle contrast, drawn uniformly; it replaces the experiment's beta.
        beam_rms: relative rms of a lognormal beam-intensity fluctuation per frame.
        dead_fraction: fraction of dead pixels (exact model only).
        drop_fraction: fraction of dropped frames (exact model only), NaN rows and columns.
        drift: (low, high) slope a of a linear beam-intensity drift
            b(t) = 1 + a (t / window - 1/2), drawn uniformly per map.
        dropped: (low, high) fraction of dropped frames (NaN rows and columns), drawn
            uniformly per map (fast and exact models; in the exact model it replaces
            ``drop_fraction`` where positive).

    A range with low == high draws nothing: (0, 0) gives a bank of the same bytes as a
    configuration without the range.
    """

    counts: tuple[float, float] = (0.01, 1.0)
    n_pix: tuple[float, float] = (1e3, 1e5)
    beta: tuple[float, float] = (0.1, 0.3)
    beam_rms: float = 0.0
    dead_fraction: float = 0.0
    drop_fraction: float = 0.0
    drift: tuple[float, float] = (-0.9, 0.9)
    dropped: tuple[float, float] = (0.0, 0.1)

    def __post_init__(self) -> None:
        for name in ("counts", "n_pix", "beta"):
            value = tuple(float(v) for v in getattr(self, name))
            object.__setattr__(self, name, value)
            if len(value) != 2 or not 0 < value[0] <= value[1]:
                raise ConfigError(f"measurement {name} must be (low, high) with 0 < low <= high")
        if self.beta[1] > 1:
            raise ConfigError(f"measurement beta must lie in (0, 1], got {self.beta}")
        if self.n_pix[0] < 2:
            raise ConfigError("measurement n_pix needs at least 2 pixels (two halves)")
        _check_fixed("measurement ", self.beam_rms, self.dead_fraction, self.drop_fraction)
        object.__setattr__(self, "drift", _range("measurement drift", self.drift, -2, 2,
                                                 open_ends=True))
        object.__setattr__(self, "dropped", _range("measurement dropped", self.dropped, 0, 1,
                                                   open_ends=False))

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw ``counts`` (n,), ``n_pix`` (n,) (whole numbers), ``beta`` (n,), ``drift`` (n,)
        and ``dropped`` (n,) (a degenerate range draws nothing)."""
        u = rng.random((n, 3))
        return {
            "counts": _log_uniform(self.counts, u[:, 0]),
            "n_pix": np.round(_log_uniform(self.n_pix, u[:, 1])),
            "beta": self.beta[0] + u[:, 2] * (self.beta[1] - self.beta[0]),
            "drift": _uniform(self.drift, n, rng),
            "dropped": _uniform(self.dropped, n, rng),
        }

    def setting(self, counts: float, n_pix: int, beta: float, drift: float = 0.0,
                dropped: float = 0.0) -> MeasurementConfig:
        """One measurement with these nuisances and the prior's fixed constants."""
        return MeasurementConfig(nbar=float(counts), n_pix=int(n_pix), beta=float(beta),
                                 beam_rms=self.beam_rms, dead_fraction=self.dead_fraction,
                                 drop_fraction=float(dropped) if dropped > 0
                                 else self.drop_fraction, drift=float(drift))

    @classmethod
    def from_record(cls, data: dict) -> MeasurementPrior:
        """The prior an artefact recorded: ranges it does not record were off (0, 0) when it
        was made (unlike a user's configuration, where a missing key takes the default)."""
        return cls.from_dict({"drift": (0.0, 0.0), "dropped": (0.0, 0.0), **data})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MeasurementPrior:
        return _from_dict(cls, data, "measurement")


@dataclass(frozen=True)
class SamplePrior:
    """Nuisances of the scattering volume: a polycrystal's boundaries
    (docs/model.md#polycrystal).

    The beam lights K boundaries; boundary k has length L_k = L exp(s z_k), z_k ~ N(0, 1) (a
    log-normal spread s around the configuration's L), its own realisation, and its own rates
    M sigma (n pi / L_k)^2 and roughness; its normal makes an angle phi_k with the momentum
    transfer, so it sees q cos(phi_k). F_GB is the length-weighted average of their phase
    averages. A fraction f of the scatterers does not move (substrate, oxide, frozen grains):
    F -> f + (1 - f) F. K, s, cos(phi_k) and f are drawn per map, and so are the departures of
    the dynamics from the stationary model (:mod:`simulators.dynamics`): a stretching exponent
    g of the bulk decay, a log-slope a of the bulk rate over the window, a wander w of the
    illuminated volume, and intermittent events (a Poisson number per window, each re-drawing
    a fraction e of the scatterers).

    Attributes:
        boundaries: (low, high) number of boundaries K, a whole number drawn uniformly.
        length_spread: (low, high) log-normal spread s of the lengths, drawn uniformly.
        tilt: (low, high) of cos(phi_k), drawn uniformly per boundary; (1, 1): every normal
            along q.
        static: (low, high) static fraction f, drawn uniformly.
        stretch: (low, high) stretching exponent g of the bulk decay; (1, 1): exponential.
        rate_drift: (low, high) log-slope a of the bulk rate over the window; (0, 0): steady.
        wander: (low, high) distance w the illuminated volume travels over the window, in
            beam correlation lengths; (0, 0): none.
        events: (low, high) mean number of intermittent events per window; (0, 0): none.
        event_fraction: (low, high) fraction e of the scatterers each event re-draws.
        departure_share: the share of the maps that carry the dynamics' departures, drawn
            from their ranges; the rest have the stationary dynamics (g = 1, a = 0, w = 0,
            no events); 1: every map. A share below 1 puts that part of the prior's mass on
            the departures and the rest on the model's own dynamics (a spike and a slab).
            Ignored (1) when every departure is off.
        departure_draw: ``together``: a map carries the four departures or none, with
            probability ``departure_share``; ``each``: each departure (the stretch, the rate
            drift, the wander, the events) is on with that probability, independently of the
            others, so a map may carry one of them alone.

    The defaults: K in 1-4, s in 0-0.8, cos(phi) in 0.3-1, f in 0-0.3, and 5 % of the maps
    carry the departures at g in 0.5-1.5, a in -1 to 1, w in 0-1 and 0-3 events per window:
    the prior with the lowest silent-miss rate beyond the model among those that keep the
    in-model accuracy (studies/results/robustness.md, ``aged-broad5+nnpe-x3``).

    (1, 1), (0, 0), (1, 1), (0, 0) and the dynamics off is the single boundary of length L
    along q without static scatterers: the same bytes as a bank without this prior, at the
    same seed.
    """

    boundaries: tuple[int, int] = (1, 4)
    length_spread: tuple[float, float] = (0.0, 0.8)
    tilt: tuple[float, float] = (0.3, 1.0)
    static: tuple[float, float] = (0.0, 0.3)
    stretch: tuple[float, float] = (0.5, 1.5)
    rate_drift: tuple[float, float] = (-1.0, 1.0)
    wander: tuple[float, float] = (0.0, 1.0)
    events: tuple[float, float] = (0.0, 3.0)
    event_fraction: tuple[float, float] = (0.2, 0.5)
    departure_share: float = 0.05
    departure_draw: str = "together"

    def __post_init__(self) -> None:
        try:
            k = tuple(int(v) for v in self.boundaries)
        except (TypeError, ValueError):
            raise ConfigError(f"sample boundaries must be (low, high), got "
                              f"{self.boundaries!r}") from None
        if len(k) != 2 or k != tuple(float(v) for v in self.boundaries) or \
                not 1 <= k[0] <= k[1] <= 64:
            raise ConfigError(f"sample boundaries must be whole numbers (low, high) with "
                              f"1 <= low <= high <= 64, got {self.boundaries!r}")
        object.__setattr__(self, "boundaries", k)
        object.__setattr__(self, "length_spread", _range("sample length_spread",
                                                         self.length_spread, 0, 3, False))
        tilt = _range("sample tilt", self.tilt, 0, np.inf, True)
        if tilt[1] > 1:
            raise ConfigError(f"sample tilt is cos(phi): (low, high) with 0 < low <= high <= 1, "
                              f"got {self.tilt!r}")
        object.__setattr__(self, "tilt", tilt)
        object.__setattr__(self, "static", _range("sample static", self.static, 0, 1, False))
        stretch = _range("sample stretch", self.stretch, 0, np.inf, True)
        if stretch[1] > 2:  # exp(-|tau|^g) is a correlation function only for g <= 2
            raise ConfigError(f"sample stretch must be (low, high) with 0 < low <= high <= 2, "
                              f"got {self.stretch!r}")
        object.__setattr__(self, "stretch", stretch)
        object.__setattr__(self, "rate_drift", _range("sample rate_drift", self.rate_drift,
                                                      -3, 3, True))
        object.__setattr__(self, "wander", _range("sample wander", self.wander, 0, 10, False))
        object.__setattr__(self, "events", _range("sample events", self.events, 0, 20, False))
        object.__setattr__(self, "event_fraction", _range("sample event_fraction",
                                                          self.event_fraction, 0, 1, True))
        try:
            share = float(self.departure_share)
        except (TypeError, ValueError):
            share = np.nan
        if not 0 < share <= 1:
            raise ConfigError(f"sample departure_share must be in (0, 1], got "
                              f"{self.departure_share!r}")
        object.__setattr__(self, "departure_share", 1.0 if self.stationary else share)
        if self.departure_draw not in DEPARTURE_DRAWS:
            raise ConfigError(f"sample departure_draw must be one of "
                              f"{', '.join(DEPARTURE_DRAWS)}, got {self.departure_draw!r}")
        if self.departure_share == 1:  # every map carries every departure: nothing to draw
            object.__setattr__(self, "departure_draw", "together")

    @property
    def single(self) -> bool:
        """Whether every map has one boundary of length L along q, no static scatterers and the
        stationary dynamics (the single-boundary model)."""
        return (self.boundaries == (1, 1) and self.length_spread == (0.0, 0.0)
                and self.tilt == (1.0, 1.0) and self.static == (0.0, 0.0) and self.stationary)

    @property
    def stationary(self) -> bool:
        """Whether the dynamics are the model's own (every departure off)."""
        return (all(getattr(self, key) == (value, value) for key, value in NO_DEPARTURE.items())
                and self.events == (0.0, 0.0))

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw ``boundaries`` K (n,), ``length_spread`` s (n,), ``lengths``, the relative
        lengths L_k / L, shape (n, K_max) with 0 where a map has fewer boundaries, ``tilt``,
        cos(phi_k), shape (n, K_max), ``static`` f (n,), and the dynamics' ``stretch``,
        ``rate_drift``, ``wander`` (n,), ``event_count`` (n,), ``events`` (n, E, relative
        times, NaN past a map's count) and ``event_fraction`` (n,). A range that is off draws
        nothing and leaves its key out."""
        low, high = self.boundaries
        if low == high:
            k = np.full(n, low, dtype=np.int64)
        else:
            k = rng.integers(low, high + 1, size=n)
        spread = _uniform(self.length_spread, n, rng)
        lengths = np.zeros((n, high))
        present = np.arange(high)[None, :] < k[:, None]
        if self.length_spread == (0.0, 0.0):
            lengths[present] = 1.0
        else:
            z = rng.standard_normal((n, high))
            lengths[present] = np.exp(spread[:, None] * z)[present]
        out = {"boundaries": k, "length_spread": spread, "lengths": lengths}
        if self.tilt != (1.0, 1.0):
            out["tilt"] = self.tilt[0] + rng.random((n, high)) * (self.tilt[1] - self.tilt[0])
        if self.static != (0.0, 0.0):
            out["static"] = _uniform(self.static, n, rng)
        for key, value in NO_DEPARTURE.items():
            if getattr(self, key) != (value, value):
                out[key] = _uniform(getattr(self, key), n, rng)
        if self.events != (0.0, 0.0):
            times = _event_times(_uniform(self.events, n, rng), rng)
            out |= {"events": times, "event_count": (~np.isnan(times)).sum(axis=1),
                    "event_fraction": _uniform(self.event_fraction, n, rng)}
        if self.departure_share < 1:  # drawn last: a share of 1 draws the same bytes as before
            if self.departure_draw == "together":
                _stationary(out, rng.random(n) >= self.departure_share)
            else:  # one switch per departure, in the order of DEPARTURES
                off = rng.random((n, len(DEPARTURES))) >= self.departure_share
                for j, key in enumerate(DEPARTURES):
                    _stationary(out, off[:, j], (key,))
        return out

    def to_dict(self) -> dict:
        """The ranges as recorded in artefacts and hashed; a share of 1 is left out (the
        hashes of priors made before it existed): read a record back with
        :meth:`from_record`, which takes a missing share as 1."""
        out = dataclasses.asdict(self)
        if self.departure_share == 1:  # as before the share existed: the same hashes
            del out["departure_share"]
        if self.departure_draw == "together":  # as before it existed: the same hashes
            del out["departure_draw"]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> SamplePrior:
        return _from_dict(cls, data, "sample")

    @classmethod
    def from_record(cls, data: dict | None) -> SamplePrior:
        """The prior an artefact recorded: one made before polycrystals had one boundary, and
        ranges it does not record were off when it was made."""
        off = SINGLE_BOUNDARY.to_dict() | {"departure_share": 1.0}  # recorded where below 1
        return cls.from_dict({**off, **(data or {})})


#: One boundary of length L along q without static scatterers (the single-boundary model).
SINGLE_BOUNDARY = SamplePrior(boundaries=(1, 1), length_spread=(0.0, 0.0), tilt=(1.0, 1.0),
                              static=(0.0, 0.0), stretch=(1.0, 1.0), rate_drift=(0.0, 0.0),
                              wander=(0.0, 0.0), events=(0.0, 0.0))


#: The polycrystal with the model's own, stationary dynamics (every departure off): the default
#: sample prior before the departures' share, named where a study reproduces results made
#: with it.
STATIONARY = SamplePrior(stretch=(1.0, 1.0), rate_drift=(0.0, 0.0), wander=(0.0, 0.0),
                         events=(0.0, 0.0))


#: The prior without window ages (every window starts at the initial shape), named where a
#: study or the demo needs single fresh windows whatever the default.
FRESH = Prior(age=(0.0, 0.0))
