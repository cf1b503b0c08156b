r"""Each scan's likelihood from the posterior estimator, for joint posteriors over groups of
scans (docs/inference.md#group-posteriors).

With a uniform prior p(u) on the unit cube, the posterior estimator's q(u | x_i) / p(u) =
q(u | x_i) is, up to a constant, the likelihood of scan i as a function of u; for a group,

.. math::

    p(\phi \mid x_1 .. x_n) \propto p(\phi) \prod_i q(u_i(\phi) \mid x_i) / p(u_i(\phi))

(the potential sbi uses for independent observations); an ensemble's q is the mean of its
members', each renormalised to the cube (docs/inference.md#ensemble), or of its first ``first``
members'. The embedding f(x_i) is computed once; each call evaluates the flows' transforms
for every parameter vector and scan at once, every member in one pass where the flows are the
NSF that ``gbsbi train`` builds (:mod:`gbsbi.inference.npe.fused`: the members cost little
more than one).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from gbsbi.errors import GbsbiError
from gbsbi.inference.flow import log_prob_given, parts
from gbsbi.inference.model import TrainedModel
from gbsbi.inference.npe.fused import FusedEnsemble
from gbsbi.inference.npe.network import members
from gbsbi.inference.npe.predict import member_log_mass, mix


def chosen_members(model: TrainedModel, first: int = 0) -> list[torch.nn.Module]:
    """The flows the likelihood mixes, in eval mode: an ensemble's first ``first`` members
    (0: all); a one-line error where ``first`` is negative or the model has fewer."""
    flows = members(model)
    if not 0 <= first <= len(flows):
        raise GbsbiError(f"--members {first}: must be 0 (every member) to "
                         f"{len(flows)}, the member(s) of the model {model.directory}")
    return [flow.eval() for flow in flows[:first or None]]


def scan_log_likelihood(model: TrainedModel, x: np.ndarray, first: int = 0,
                        one_pass: bool = True) -> Callable[[np.ndarray], np.ndarray]:
    """log q(u_i | x_i) of the n scans with inputs x, shape (n, D), as a NumPy function of
    u, shape (m, n, 3) -> (m, n); -inf outside the cube. ``first``: the mixture of an
    ensemble's first members only (0: every member; 1: member 0 as a model of one).
    ``one_pass``: the members in one pass where their architecture allows
    (:mod:`gbsbi.inference.npe.fused`); False: member by member through nflows, the
    reference the pass is tested and timed against."""
    flows = chosen_members(model, first)
    with torch.no_grad():
        inputs = torch.as_tensor(x, dtype=torch.float32)
        features = [parts(flow).embedding(inputs) for flow in flows]
        # an ensemble's members each renormalised to the cube, as its draws are
        log_mass = member_log_mass(flows, x) if len(flows) > 1 else torch.zeros(1, len(x))
        fused = FusedEnsemble.of(flows, torch.stack(features)) if one_pass else None

    def each(u: torch.Tensor) -> torch.Tensor:
        """log q_k(u | x), member by member, shape (K, m, n) (an architecture not fused)."""
        m, n, _ = u.shape
        return torch.stack([log_prob_given(flow, u.reshape(m * n, 3), f.repeat(m, 1))
                            for flow, f in zip(flows, features, strict=True)]).view(-1, m, n)

    @torch.inference_mode()
    def log_likelihood(u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        inside = np.all((u >= 0) & (u <= 1), axis=-1)
        points = torch.as_tensor(np.clip(u, 0, 1), dtype=torch.float32)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a few hundred points: more threads only add their overhead
        try:
            out = (fused or each)(points)
        finally:
            torch.set_num_threads(threads)
        out = mix(out, log_mass).double().numpy()  # one: log q
        return np.where(inside, np.nan_to_num(out, nan=-np.inf), -np.inf)

    return log_likelihood
