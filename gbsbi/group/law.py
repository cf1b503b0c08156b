r"""The parameters of a group of scans and how they set each scan's (D, sigma, c)
(docs/inference.md#group-posteriors). NumPy only.

A group of n scans at temperatures T_i shares some parameters:

* ``law = "arrhenius"``: D_i = D_ref exp(-E_a / k_B (1 / T_i - 1 / T_ref)), with D_ref in
  nm^2/s at T_ref and E_a in eV;
* ``law = "none"``: D is shared (one D for every scan) when ``"D"`` is in ``shared``, else free
  per scan;
* sigma and c are shared when named in ``shared``, else free per scan.

Every parameter is sampled on the unit interval z in [0, 1]: D_ref and E_a uniform over their
ranges (:class:`GroupPrior`); a shared or free per-scan parameter on the per-scan prior's own
unit scale (D and c linear, sigma logarithmic), so its prior is the per-scan prior. The prior of
the group is uniform in z times the indicator that every scan's parameters lie inside the
per-scan prior: a D_ref and E_a that send some D_i outside [0, 5e-4] nm^2/s have zero density.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gbsbi.errors import GbsbiError
from gbsbi.group.config import LAWS, GroupPrior
from simulators.config import Prior

#: Boltzmann constant in eV/K.
K_B_EV = 8.617333262e-5
NAMES = ("D", "sigma", "c")
UNITS = {"D_ref": "nm^2/s", "Ea": "eV", "D": "nm^2/s", "sigma": "J/m^2", "c": "1"}


@dataclass(frozen=True)
class GroupModel:
    """The layout of a group's parameter vector z (module docstring).

    Attributes:
        temperature: the scans' temperatures in K, shape (n,).
        law: ``arrhenius`` or ``none``.
        shared: the per-scan parameters the group shares (``D`` only with ``law = none``).
        prior: the per-scan prior.
        group_prior: the Arrhenius parameters' prior.
    """

    temperature: np.ndarray
    law: str = "none"
    shared: tuple[str, ...] = ()
    prior: Prior = field(default_factory=Prior)
    group_prior: GroupPrior = field(default_factory=GroupPrior)

    def __post_init__(self) -> None:
        object.__setattr__(self, "temperature", np.asarray(self.temperature, dtype=np.float64))
        if self.law not in LAWS:
            raise GbsbiError(f"--law must be one of {', '.join(LAWS)}, got {self.law!r}")
        unknown = [s for s in self.shared if s not in NAMES]
        if unknown:
            raise GbsbiError(f"--shared takes D, sigma and c, got {unknown[0]!r}")
        if self.law == "arrhenius" and "D" in self.shared:
            raise GbsbiError("--law arrhenius sets D from D_ref and Ea: leave D out of --shared")
        if self.law == "arrhenius" and len(np.unique(self.temperature)) < 2:
            raise GbsbiError(f"--law arrhenius needs scans at two temperatures at least (Ea is "
                             f"not identifiable at one), found "
                             f"{', '.join(f'{t:g} K' for t in np.unique(self.temperature))}")
        object.__setattr__(self, "shared", tuple(n for n in NAMES if n in self.shared))

    @property
    def n(self) -> int:
        return len(self.temperature)

    @property
    def group_names(self) -> tuple[str, ...]:
        """The group-level parameters, in the order of z."""
        head = ("D_ref", "Ea") if self.law == "arrhenius" else ()
        return head + self.shared

    @property
    def scan_names(self) -> tuple[str, ...]:
        """The parameters free per scan (each n entries of z after the group's)."""
        fixed = {"D"} if self.law == "arrhenius" else set()
        return tuple(n for n in NAMES if n not in self.shared and n not in fixed)

    @property
    def dim(self) -> int:
        return len(self.group_names) + self.n * len(self.scan_names)

    def unit(self, z: np.ndarray) -> np.ndarray:
        """Each scan's u (the per-scan unit cube) for parameter vectors z, shape (m, dim) ->
        (m, n, 3); a D_i outside its prior gives u outside [0, 1]."""
        z = np.atleast_2d(np.asarray(z, dtype=np.float64))
        m, n = len(z), self.n
        u = np.empty((m, n, 3))
        k = 0
        if self.law == "arrhenius":
            d_ref = self._scale(z[:, 0], self.group_prior.d_ref)
            ea = self._scale(z[:, 1], self.group_prior.ea)
            D = self.arrhenius(d_ref, ea)
            u[:, :, 0] = self.prior.parameters[0].to_unit(D)
            k = 2
        for j, name in enumerate(NAMES):
            if name in self.shared:
                u[:, :, j] = z[:, k][:, None]
                k += 1
        for j, name in enumerate(NAMES):
            if name in self.scan_names:
                u[:, :, j] = z[:, k:k + n]
                k += n
        return u

    def from_box(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The sampler's coordinates: parameter vectors z from points w of the unit box, and
        log |dz / dw|; shapes (m, dim) -> (m, dim), (m,).

        Under the Arrhenius law, w_0 is D at T_top, the hottest of T_ref and the scans, over
        the largest D the priors allow there: D_ref = w_0 D_max exp(-E_a / k_B (1 / T_ref -
        1 / T_top)). With E_a >= 0 that D is the largest of D_ref and every D_i, so the
        support's curved edge (no scan's D above the per-scan prior) becomes the box's face
        w_0 = 1, where an ensemble sampler moves freely. Every other coordinate is z itself.
        """
        z = np.array(np.atleast_2d(w), dtype=np.float64)
        log_jacobian = np.zeros(len(z))
        if self.law == "arrhenius":
            low, high = self.group_prior.d_ref
            hottest = self.temperature.max()
            top = max(hottest, self.group_prior.t_ref)
            d_max = self.prior.parameters[0].high if top == hottest else high
            ea = self._scale(z[:, 1], self.group_prior.ea)
            exponent = -ea / K_B_EV * (1 / self.group_prior.t_ref - 1 / top)
            z[:, 0] = (z[:, 0] * d_max * np.exp(exponent) - low) / (high - low)
            log_jacobian = np.log(d_max / (high - low)) + exponent
        return z, log_jacobian

    def arrhenius(self, d_ref: np.ndarray, ea: np.ndarray) -> np.ndarray:
        """D_i of each scan, shape (m, n), for D_ref and E_a of shape (m,)."""
        inverse = 1 / self.temperature - 1 / self.group_prior.t_ref
        return np.asarray(d_ref)[:, None] * np.exp(-np.asarray(ea)[:, None] / K_B_EV * inverse)

    @staticmethod
    def _scale(z: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
        return bounds[0] + z * (bounds[1] - bounds[0])

    def physical(self, z: np.ndarray) -> dict[str, np.ndarray]:
        """The parameters in physical units: group-level ones shape (m,), per-scan ones shape
        (m, n) (``D`` per scan under the Arrhenius law too, as ``D_scan``)."""
        z = np.atleast_2d(np.asarray(z, dtype=np.float64))
        theta = self.prior.from_unit(np.clip(self.unit(z), 0, 1))  # (m, n, 3)
        out = {}
        if self.law == "arrhenius":
            out["D_ref"] = self._scale(z[:, 0], self.group_prior.d_ref)
            out["Ea"] = self._scale(z[:, 1], self.group_prior.ea)
        for j, name in enumerate(NAMES):
            if name in self.shared:
                out[name] = theta[:, 0, j]
        for j, name in enumerate(NAMES):
            if name in self.scan_names:
                out[f"{name}_scan"] = theta[:, :, j]
        out["D_scan"] = theta[:, :, 0]
        return out

    def inside(self, z: np.ndarray) -> np.ndarray:
        """Whether each z lies in the support of the group's prior, shape (m,)."""
        z = np.atleast_2d(np.asarray(z, dtype=np.float64))
        u = self.unit(z)
        return np.all((z >= 0) & (z <= 1), axis=1) & np.all((u >= 0) & (u <= 1), axis=(1, 2))
