r"""Calibration and accuracy of a trained model on simulations with known parameters, from one
set of posterior draws (docs/validation.md#draws): the one evaluation path of gbsbi.

For n simulations (x_i, u_i) the flow q(u | x) is sampled ``draws`` times per x_i inside the
prior's cube, with log q at each draw (:func:`gbsbi.inference.npe.predict.draws_with_density`).
The same draws then give

* the posterior mean and central intervals on the prior's scale (D, log10 sigma, c, affine in
  u), their R^2, RMSE and coverage;
* the joint highest-density coverage from log q at the draws and at the truth
  (:func:`gbsbi.validation.calibration.hpd_levels`);
* SBC ranks with sbi's ``run_sbc`` and ``check_sbc``, and TARP with ``run_tarp`` and
  ``check_tarp`` (:func:`gbsbi.inference.sbi_tools.sbc_and_tarp`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gbsbi.errors import GbsbiError
from gbsbi.validation.calibration import (
    LEVEL,
    LEVELS,
    binomial_band,
    central_coverage,
    hpd_coverage,
    hpd_levels,
    r2_score,
    rmse,
)


@dataclass(frozen=True)
class CheckResult:
    """Every number of a check (see :meth:`to_dict`), and what the figures need.

    Attributes:
        truth, mean, median, low, high: on the prior's scale (D, log10 sigma, c), shape
            (n, 3); ``low`` and ``high`` bound the central 90 % interval.
        rank: SBC ranks from sbi's ``run_sbc`` (draws below the truth), shape (n, 3), or None
            when SBC and TARP were not asked for.
        hpd: level at which the truth enters the joint HPD region, shape (n,).
        draws: posterior draws per simulation.
        sbc: sbi's ``check_sbc`` figures, as lists.
        tarp: ``ecp`` and ``alpha`` from ``run_tarp`` and ``atc``, ``ks_pvalue`` from
            ``check_tarp``.
        seconds: time of the draws, of the SBC and TARP and in all.
        left_out: simulations left out of every figure because their posterior has less than
            0.1 % of its mass inside the prior, so no draws (docs/inference.md#outside-the-prior).
    """

    truth: np.ndarray
    mean: np.ndarray
    median: np.ndarray
    low: np.ndarray
    high: np.ndarray
    rank: np.ndarray | None
    hpd: np.ndarray
    draws: int
    sbc: dict
    tarp: dict
    seconds: dict
    left_out: int = 0

    @property
    def contains(self) -> np.ndarray:
        """Whether each central 90 % interval holds the truth, shape (n, 3)."""
        return (self.truth >= self.low) & (self.truth <= self.high)

    @property
    def width(self) -> np.ndarray:
        return self.high - self.low

    def to_dict(self) -> dict:
        n = len(self.truth)
        out = {
            "n": n, "draws": self.draws, "parameters": ["D", "log10_sigma", "c"],
            "r2": r2_score(self.truth, self.mean).tolist(),
            "rmse": rmse(self.truth, self.mean).tolist(),
            "coverage_90": self.contains.mean(0).tolist(),
            "mean_width_90": self.width.mean(0).tolist(),
            "levels": LEVELS.tolist(),
            "hpd_coverage": hpd_coverage(self.hpd, LEVELS).tolist(),
            "binomial_band_95": binomial_band(LEVELS, n).tolist(),
            "sbc": self.sbc, "tarp": self.tarp, "seconds": self.seconds,
            "left_out_outside_prior": self.left_out,
        }
        if self.rank is not None:
            out["central_coverage"] = central_coverage(self.rank / self.draws, LEVELS).T.tolist()
        return out


def run_check(
    model, x: np.ndarray, u: np.ndarray, draws: int = 1000, seed: int = 0,  # noqa: ANN001
    batch: int = 100, diagnostics: bool = True, show_progress: bool | None = False,
) -> CheckResult:
    """Draw, and compute every number of a check.

    Args:
        model: the trained model (:class:`gbsbi.inference.model.TrainedModel`, a posterior
            estimator).
        x: network inputs of the simulations, shape (n, D).
        u: their true parameters in the unit cube, shape (n, 3).
        draws: posterior draws per simulation.
        seed: seeds the draws, TARP's reference points and sbi's C2ST.
        batch: simulations sampled together.
        diagnostics: also run SBC and TARP (False: accuracy, intervals and HPD levels only,
            for studies over many sets).
        show_progress: a progress display over the simulations (None: a bar on a terminal,
            lines in a log; False: none).
    """
    from gbsbi.inference.npe.predict import draws_with_density
    from gbsbi.inference.sbi_tools import sbc_and_tarp
    from gbsbi.progress import progress_bar

    start = time.perf_counter()
    with progress_bar(len(x), "check", "simulation", show_progress) as bar:
        drawn = draws_with_density(model, x, u, draws, seed, batch, bar.update)
    # a simulation whose posterior has (almost) no mass inside the prior has NaN draws: it is
    # left out of every figure and counted
    kept = np.isfinite(drawn["u"]).all(axis=(0, 2))
    if not kept.any():
        raise GbsbiError(f"none of the {len(x)} simulations has posterior draws inside the "
                         "prior (docs/inference.md#outside-the-prior): nothing to check")
    if not kept.all():
        x, u = x[kept], np.asarray(u)[kept]
        drawn = {"u": drawn["u"][:, kept], "log_q": drawn["log_q"][:, kept],
                 "log_q_truth": drawn["log_q_truth"][kept]}
    hpd = hpd_levels(drawn["log_q"], drawn["log_q_truth"])
    done = time.perf_counter()
    low_scale, high_scale = model.spec.prior.scale_bounds()
    width = high_scale - low_scale
    scaled = low_scale + drawn["u"] * width
    low, median, high = np.quantile(scaled, [(1 - LEVEL) / 2, 0.5, (1 + LEVEL) / 2], axis=0)
    rank, sbc, tarp = None, {}, {}
    if diagnostics:
        rank, sbc, tarp = sbc_and_tarp(drawn["u"], u, x, seed)
    end = time.perf_counter()
    return CheckResult(
        truth=low_scale + np.asarray(u, dtype=np.float64) * width, mean=scaled.mean(0),
        median=median, low=low, high=high, rank=rank, hpd=hpd, draws=draws, sbc=sbc,
        tarp=tarp, seconds={"draws": done - start, "sbc_tarp": end - done, "total": end - start},
        left_out=int((~kept).sum()),
    )


def check_to_files(
    model_dir: str | os.PathLike, test: str | os.PathLike, out: str | os.PathLike, *,
    n: int = 1000, draws: int = 1000, seed: int = 0, cache: str | os.PathLike | None = None,
    overwrite: bool = False, log: Callable[[str], None] = print,
) -> dict:
    """``gbsbi check``: sample the model's posterior for simulations with known parameters
    (the first ``n`` of ``test``) and write ``check.json``, ``check.npz`` and the figures to the
    folder ``out``; returns the numbers and prints a summary through ``log``."""
    from gbsbi.inference.data import labelled_inputs
    from gbsbi.inference.device import configure
    from gbsbi.inference.model import load_model
    from gbsbi.io.atomic import atomic_folder, check_new_folder
    from gbsbi.plots.check import coverage_plot, predicted_plot, sbc_plot, tarp_plot

    check_new_folder(out, overwrite)
    if n < 2:
        raise GbsbiError(f"--n must be at least 2, got {n}")
    if draws < 10:
        raise GbsbiError(f"--draws must be at least 10, got {draws}")
    model = load_model(model_dir)
    spec = model.spec
    x, u, content = labelled_inputs(test, spec.experiment, spec.prior, spec.inputs, cache=cache)
    x, u = x[:n], u[:n]
    configure("cpu")
    result = run_check(model, x, u, draws=draws, seed=seed, show_progress=None)
    numbers = result.to_dict()
    numbers["configuration"] = {"model": str(model_dir), "model_hash": model.hash,
                                "test": str(test), "test_hash": content, "n": len(x),
                                "draws": draws, "seed": seed}
    with atomic_folder(out, overwrite) as folder:
        (folder / "check.json").write_text(json.dumps(numbers, indent=1))
        np.savez(folder / "check.npz", truth=result.truth, mean=result.mean,
                 median=result.median, low=result.low, high=result.high, rank=result.rank,
                 hpd=result.hpd)
        coverage_plot(numbers, folder / "coverage.png")
        sbc_plot(result.rank, result.draws, folder / "sbc_ranks.png")
        tarp_plot(numbers, folder / "tarp.png")
        predicted_plot(result.truth, result.median, result.low, result.high, numbers["r2"],
                       folder / "predicted.png")
    log(summary(numbers))
    if result.left_out:
        log(f"warning: {result.left_out} of {len(x)} simulations left out: their posteriors "
            "have less than 0.1 % of their mass inside the prior, so no draws "
            "(docs/inference.md#outside-the-prior)")
    log(f"wrote {out}")
    return numbers


def summary(numbers: dict) -> str:
    """The check's figures in a few lines."""
    lines = [f"{numbers['n']} simulations x {numbers['draws']} draws in "
             f"{numbers['seconds']['total']:.1f} s"]
    for k, name in enumerate(numbers["parameters"]):
        lines.append(f"  {name:<12} R^2 {numbers['r2'][k]:6.3f}  RMSE {numbers['rmse'][k]:9.3g}"
                     f"  90% coverage {numbers['coverage_90'][k]:.3f}  SBC KS p "
                     f"{numbers['sbc']['ks_pvals'][k]:.3f}")
    hpd = dict(zip(numbers["levels"], numbers["hpd_coverage"], strict=True))
    lines.append(f"  joint HPD coverage at 0.5 / 0.9: {hpd[0.5]:.3f} / {hpd[0.9]:.3f}; TARP ATC "
                 f"{numbers['tarp']['atc']:+.3f}, KS p {numbers['tarp']['ks_pvalue']:.3f}")
    return "\n".join(lines)
