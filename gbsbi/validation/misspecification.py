r"""Is a scan like the simulations? Per-scan and per-set tests
(docs/validation.md#misspecification-per-scan).

Per scan, several statistics, each calibrated on held-out simulations of the model
(:mod:`gbsbi.inference.misspecification` holds what they were; :mod:`gbsbi.validation.statistics`
how each becomes a p-value):

* ``density``: with the reference log-densities l_1..l_m of held-out simulations under the
  density p(f) of the embedding, the p-value of a scan with features f_o is

  .. math::

      p_o = \frac{1}{m} \sum_{j=1}^{m} \mathbb 1[\, l_j \le \log p(f_o) \,]

  (sbi's ``calc_misspecification_logprob`` test, vectorised over scans): small for a scan
  whose features lie where simulations do not;
* ``subspace``: what of the reduced map lies outside the simulations' principal subspace;
* ``ppc_map``, ``ppc_phi`` and ``ppc_trend``: predictive discrepancies of the map, of its
  plain Phi and of its trend along the window against replicates at the scan's posterior
  draws.

They combine into one p-value per scan by their minimum, calibrated on the same held-out
simulations (:func:`gbsbi.validation.statistics.min_p_combination`). A scan whose posterior
lies outside the prior has no draws to test and gets p = 0 (``outside_prior``). One rule
decides a flag everywhere (:func:`flagged`): the combined p < alpha.

Per set: sbi's MMD test of the scans' features against the reference features, with a
permutation null (:func:`gbsbi.inference.sbi_tools.mmd_test`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gbsbi.errors import GbsbiError
from gbsbi.validation.statistics import (
    PPC_DRAWS,
    conformal_pvalues,
    loo_pvalues,
    min_p_combination,
)

#: The per-scan statistics, in the order they are reported.
TESTS = ("density", "subspace", "ppc_map", "ppc_phi", "ppc_trend")
#: The name under which a scan whose posterior lies outside the prior (it has no draws,
#: docs/inference.md#outside-the-prior) is flagged, with p = 0; not a calibrated statistic.
OUTSIDE = "outside_prior"
#: The predictive statistics, in the order :func:`gbsbi.validation.ppc.predictive_statistics`
#: returns them.
PREDICTIVE = TESTS[2:]


def flagged(p: np.ndarray, alpha: float) -> np.ndarray:
    """The one rule for a flag: p < alpha (NaN is not flagged), shape of p."""
    p = np.asarray(p, dtype=np.float64)
    return np.nan_to_num(p, nan=1.0) < alpha


def pvalues(null: np.ndarray, log_p: np.ndarray) -> np.ndarray:
    """p-value of each scan (module docstring) from the null log-densities, shape (m,), and
    the scans' log-densities, shape (n,); returns shape (n,)."""
    null, log_p = np.asarray(null), np.asarray(log_p)
    return (null[None, :] <= log_p[:, None]).mean(1)


def reference_pvalues(reference, f) -> np.ndarray:  # noqa: ANN001 - a Reference, features
    """p-values of features f, shape (n, F), under a fitted reference
    (:class:`gbsbi.inference.misspecification.Reference`), shape (n,)."""
    from gbsbi.inference.misspecification import log_density

    log_p = np.asarray(log_density(reference.density, f))
    return pvalues(np.asarray(reference.log_probs), log_p)


@dataclass(frozen=True)
class ScanTests:
    """The per-scan tests of a set of scans.

    Attributes:
        p: the combined p-value of each scan, shape (n,).
        tests: each statistic's p-value by name (:data:`TESTS`), shape (n,) each.
        alpha: the level below which a scan is flagged.
        meta: the reference's record (``misspecification.json``).
    """

    p: np.ndarray
    tests: dict[str, np.ndarray]
    alpha: float
    meta: dict

    @property
    def flagged(self) -> np.ndarray:
        return flagged(self.p, self.alpha)

    def reasons(self, k: int) -> list[str]:
        """The statistics that flag scan k by themselves (p < alpha); may be empty when only
        their combination does."""
        return [name for name, p in self.tests.items() if np.isfinite(p[k]) and p[k] < self.alpha]


def scan_tests(model, x: np.ndarray, maps: np.ndarray | None = None,  # noqa: ANN001
               temperature: np.ndarray | None = None, theta: np.ndarray | None = None,
               seed: int = 0, age: np.ndarray | None = None) -> ScanTests | None:
    """Every per-scan test of scans with network inputs x, shape (n, D); None where the model
    has no reference.

    Args:
        model: the trained posterior estimator (:class:`gbsbi.inference.model.TrainedModel`).
        x: the scans' network inputs.
        maps: their maps on the model's grid, shape (n, T, T), for the predictive tests (None:
            left out).
        temperature: their temperatures in K, shape (n,).
        theta: posterior draws, shape (draws, n, 3); the first ``PPC_DRAWS`` of each scan are
            replicated.
        seed: seeds the replicates.
        age: their window ages in s, shape (n,) (None: 0), where the replicates start.
    """
    from gbsbi.inference.misspecification import (
        features,
        load_reference,
        log_density,
        standardised,
    )
    from gbsbi.io.posteriors import without_draws
    from gbsbi.validation.ppc import predictive_statistics

    reference = load_reference(model)
    if reference is None:
        return None
    null_lp = np.asarray(reference.log_probs, dtype=np.float64)
    log_p = np.asarray(log_density(reference.density, features(model, x)), dtype=np.float64)
    tests = {"density": conformal_pvalues(null_lp, log_p, False)}
    nulls = {"density": loo_pvalues(null_lp, False)}
    if reference.subspace is not None:
        residual = reference.subspace.residual(standardised(model, x))
        tests["subspace"] = conformal_pvalues(reference.nulls["subspace"], residual, True)
        nulls["subspace"] = loo_pvalues(reference.nulls["subspace"], True)
    # a scan whose posterior lies outside the prior has no draws (NaN): flagged by that alone
    outside = np.zeros(len(x), dtype=bool) if theta is None else without_draws(theta)
    if maps is not None and theta is not None and "ppc_map" in reference.nulls:
        spec, rng = model.spec, np.random.default_rng(seed)
        sample = None if spec.sample.single else spec.sample
        age = np.zeros(len(x)) if age is None else age
        raw = np.array([predictive_statistics(theta[:PPC_DRAWS, k], float(temperature[k]),
                                              maps[k], spec.experiment, spec.nuisance, sample,
                                              spec.inputs.bins, spec.inputs.grading, rng,
                                              float(age[k]))
                        if not outside[k] else (np.nan,) * len(PREDICTIVE)
                        for k in range(len(x))]).reshape(len(x), len(PREDICTIVE))
        for j, name in enumerate(PREDICTIVE):
            if name in reference.nulls:  # a reference of version 2 has no ppc_trend
                tests[name] = conformal_pvalues(reference.nulls[name], raw[:, j], False)
                nulls[name] = loo_pvalues(reference.nulls[name], False)
    # the null simulations are the same ones, in the same order, for every statistic: the
    # first m of them have every p-value (the predictive ones are the costliest)
    m = min(len(v) for v in nulls.values())
    null_p = np.stack([v[:m] for v in nulls.values()], axis=-1)
    combined = min_p_combination(np.stack(list(tests.values()), axis=-1), null_p)
    if outside.any():
        tests[OUTSIDE] = np.where(outside, 0.0, np.nan)
        combined = np.where(outside, 0.0, combined)
    return ScanTests(combined, tests, reference.alpha, reference.meta)



def set_test(reference_features: np.ndarray, f: np.ndarray, n_shuffle: int = 1000,
             seed: int = 0) -> dict:
    """sbi's MMD test of a whole set of scans' features f, shape (n, F), against the
    reference features, shape (m, F), 2 <= n < m."""
    from gbsbi.inference.sbi_tools import mmd_test

    size = len(reference_features)
    if not 2 <= len(f) < size:
        raise GbsbiError(f"the set test needs 2 to {size - 1} scans (the reference has "
                         f"{size} simulations), found {len(f)}")
    return {**mmd_test(f, reference_features, n_shuffle, seed), "n_scans": len(f),
            "n_reference": size, "n_shuffle": n_shuffle}


def fit_reference_to_model(model_dir: str | os.PathLike, bank: str | os.PathLike, *,
                           cache: str | os.PathLike | None = None, overwrite: bool = False,
                           log: Callable[[str], None] = print) -> None:
    """Fit the reference density into a model trained without one, on the same held-out
    split of its training bank."""
    from gbsbi.inference.data import bank_inputs, bank_maps, read_bank_setup
    from gbsbi.inference.loop import split
    from gbsbi.inference.misspecification import META, fit_and_save_reference
    from gbsbi.inference.model import load_model

    model = load_model(model_dir)
    if (model.directory / META).exists() and not overwrite:
        raise GbsbiError(f"{model.directory} already has a misspecification reference; pass "
                         "--overwrite to fit it again")
    setup = read_bank_setup(bank)
    if setup.content_hash != model.meta["bank"]["content_hash"]:
        raise GbsbiError(f"{bank}: not the bank the model was trained on (content "
                         f"{setup.content_hash[:12]}, the model's "
                         f"{model.meta['bank']['content_hash'][:12]})")
    data = bank_inputs(bank, model.spec.inputs, cache=cache)
    training = model.spec.training
    _, heldout = split(len(data.x), training.validation_fraction, training.seed)
    index = heldout.numpy()
    fit_and_save_reference(model, data.x[index], log, bank_maps(bank, index))


def misspec_to_files(model_dir: str | os.PathLike, maps: str | os.PathLike,
                     out: str | os.PathLike, *, seed: int = 0, overwrite: bool = False,
                     log: Callable[[str], None] = print) -> dict:
    """``gbsbi misspec``: per-scan p-values and the set test of a maps file, written to
    ``out/misspec.json`` and ``out/misspec.png``; returns the JSON's content."""
    from gbsbi.inference.data import scan_inputs
    from gbsbi.inference.misspecification import features, load_reference, log_density
    from gbsbi.inference.model import load_model
    from gbsbi.inference.npe.predict import posterior_draws
    from gbsbi.io.atomic import atomic_folder, check_new_folder
    from gbsbi.io.posteriors import unique_names
    from gbsbi.plots.misspec import misspec_plot

    check_new_folder(out, overwrite)
    model = load_model(model_dir)
    reference = load_reference(model)
    if reference is None:
        raise GbsbiError(f"{model_dir}: the model has no misspecification reference; fit it "
                         "with --fit-reference BANK.h5 (its training bank)")
    scans = scan_inputs(maps, model.spec.experiment, model.spec.inputs)
    for note in scans.notes:
        log(note)
    f = features(model, scans.x)
    log_p = log_density(reference.density, f).numpy()
    tested = scan_tests(model, scans.x, scans.maps.C, scans.maps.temperature,
                        posterior_draws(model, scans.x, PPC_DRAWS, seed), seed,
                        scans.maps.ages)
    p, flags = tested.p, tested.flagged
    names = unique_names(scans.maps.names())
    result = {"alpha": reference.alpha,
              "scans": {str(n): float(v) for n, v in zip(names, p, strict=True)},
              "tests": {name: {str(n): float(v) for n, v in zip(names, values, strict=True)}
                        for name, values in tested.tests.items()},
              "flagged": [str(n) for n, f_ in zip(names, flags, strict=True) if f_],
              "flag_rate": float(flags.mean()), "reference": reference.meta,
              "model_hash": model.hash, "maps": str(maps), "maps_hash": scans.content_hash}
    if 2 <= len(p) < len(reference.features):
        result["set"] = set_test(reference.features.numpy(), f.numpy(), seed=seed)
    with atomic_folder(out, overwrite) as folder:
        (folder / "misspec.json").write_text(json.dumps(result, indent=1))
        misspec_plot(reference.log_probs.numpy(), log_p, names, flags, reference.alpha,
                     folder / "misspec.png")
    log(f"{len(result['flagged'])} of {len(p)} scans flagged (p < {reference.alpha:g}): "
        + (", ".join(result["flagged"][:10]) or "none")
        + (" ..." if len(result["flagged"]) > 10 else ""))
    if "set" in result:
        log(f"whole file: MMD {result['set']['mmd']:.4f}, p = {result['set']['p_value']:.3f}")
    log(f"wrote {out}")
    return result
