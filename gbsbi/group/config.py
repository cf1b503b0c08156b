"""Settings of group posteriors (no NumPy: the command line reads their defaults)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from gbsbi.errors import GbsbiError

LAWS = ("arrhenius", "none")
#: Chains the draws are split into, for ArviZ's diagnostics.
CHAINS = 4


@dataclass(frozen=True)
class GroupPrior:
    """The prior of the Arrhenius law's parameters (uniform over each range).

    Attributes:
        d_ref: (low, high) of D_ref in nm^2/s, D at ``t_ref``.
        ea: (low, high) of the activation energy E_a in eV.
        t_ref: the reference temperature T_ref in K.
    """

    d_ref: tuple[float, float] = (0.0, 5e-4)
    ea: tuple[float, float] = (0.0, 1.0)
    t_ref: float = 400.0

    def __post_init__(self) -> None:
        for name in ("d_ref", "ea"):
            low, high = (float(v) for v in getattr(self, name))
            if not (math.isfinite(low) and math.isfinite(high) and 0 <= low < high):
                raise GbsbiError(f"the prior of {name} must be (low, high) with 0 <= low < high, "
                                 f"got ({low:g}, {high:g})")
            object.__setattr__(self, name, (low, high))
        if not (math.isfinite(self.t_ref) and self.t_ref > 0):
            raise GbsbiError(f"--t-ref must be a positive temperature in K, got {self.t_ref}")


@dataclass(frozen=True)
class GroupSettings:
    """How a group's posterior is sampled.

    Attributes:
        draws: draws kept in all (a multiple of the 4 chains).
        walkers: emcee's ensemble (at least twice the dimension plus 2 is used).
        max_steps: the most steps.
        tau_factor: stop once the chain is this many autocorrelation times long ...
        min_ess: ... and, after a burn-in of 2 tau, every parameter's bulk ESS is at least
            this ...
        max_rhat: ... and its R-hat at most this (rank-normalised, Vehtari et al. 2021;
            the walkers of one ensemble are not independent chains, so 1.05, not 1.01).
        check_every: steps between checks.
        seed: seeds the start and emcee.
        members: the ensemble members each scan's likelihood mixes, the first ones (0: all
            of them). The members run in one pass per call, so 1 is about 1.7 times faster
            than the default ensemble of three, and calibrated on its own
            (studies/results/group_calibration.md).
        temper: lambda, the power of each scan's likelihood in the product (1: the product
            itself). 0.65 by default: the product of learned posteriors is overconfident
            (90 % intervals covered Ea 0.81, sigma 0.83 of 200 simulated groups), and 0.65,
            chosen on one set of simulated groups and checked on another
            (studies/results/group_calibration.md), brings coverage to about 0.9; checked
            again with the default ensemble of three (0.89-0.93 on 200 held-out groups).
    """

    draws: int = 2000
    walkers: int = 32
    max_steps: int = 6000
    tau_factor: float = 10.0
    min_ess: float = 400.0
    max_rhat: float = 1.05
    check_every: int = 100
    seed: int = 0
    temper: float = 0.65
    members: int = 0

    def __post_init__(self) -> None:
        if self.draws < CHAINS or self.draws % CHAINS:
            raise GbsbiError(f"--draws must be a positive multiple of {CHAINS}, got "
                             f"{self.draws}")
        if self.members < 0:
            raise GbsbiError(f"--members must be 0 (every member) or more, got {self.members}")
        if not 0 < self.temper <= 1:
            raise GbsbiError(f"--temper must be in (0, 1], got {self.temper}")

    def to_dict(self) -> dict:
        return asdict(self)
