"""Inference: the posterior estimator and what it is built from (torch lives here only).

The notebook entry point is :func:`load_posterior`, see :mod:`gbsbi.inference.npe.predict`.
OpenMP threads wait passively unless the user says otherwise (set before torch loads:
:mod:`gbsbi.inference.device`).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def load_posterior(directory, device: str = "cpu"):  # noqa: ANN001, ANN201 - lazy import
    """The posterior of a trained model (:class:`gbsbi.inference.npe.predict.GbPosterior`)."""
    from gbsbi.inference.npe.predict import load_posterior as load

    return load(directory, device)
