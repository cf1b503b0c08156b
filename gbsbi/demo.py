"""``gbsbi demo`` as a function: the whole job on the embedded default configuration.

A bank simulated as measured (fast noise model, the default physics) with its figures;
pseudo-experiments: temperature series of a few materials (groups), each with its own sigma
and c and a D that follows an Arrhenius law, measured at several temperatures; a posterior
estimator trained on the bank with CORAL and the Phi term against the pseudo-experiments' maps
(unlabelled: their theta is never shown to training); posteriors for every pseudo-experiment
with the true values marked; a summary: how often the 90 % intervals cover the truth, and the
RMSE of the posterior means; `gbsbi check` on the pseudo-experiments, `gbsbi ppc` on a few of
them, `gbsbi group --law arrhenius` on the materials, and the report (``report.html``) of the
run folder. It takes a few minutes on a 2-core machine (``--quick``:
seconds, for tests).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from gbsbi.errors import GbsbiError
from gbsbi.io.atomic import output_folder
from gbsbi.progress import progress_bar


@dataclass(frozen=True)
class DemoSize:
    """How big each step of the demo is."""

    bank: int
    groups: int
    temperatures: tuple[float, ...]
    repeats: int
    epochs: int
    draws: int
    check_draws: int
    ppc_scans: int
    ppc_draws: int
    group_draws: int


FULL = DemoSize(bank=8_000, groups=3, temperatures=(300.0, 350.0, 400.0, 450.0), repeats=5,
                epochs=20, draws=2000, check_draws=1000, ppc_scans=6, ppc_draws=50,
                group_draws=2000)
QUICK = DemoSize(bank=600, groups=2, temperatures=(320.0, 420.0), repeats=1, epochs=2,
                 draws=200, check_draws=100, ppc_scans=2, ppc_draws=20, group_draws=200)


def run_demo(out: str | Path, quick: bool = False, seed: int = 0,
             overwrite: bool = False) -> Path:
    """Run the demo into the folder ``out`` (``quick``: a tiny run); a run that fails leaves
    nothing it created; returns ``out``."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise GbsbiError(f"{out} exists and is not empty; pass --overwrite or choose --out")
        shutil.rmtree(out)
    with output_folder(out):
        _demo(out, QUICK if quick else FULL, seed)
    return out


def _demo(out: Path, size: DemoSize, seed: int) -> None:
    """The steps of the module docstring, into ``out``."""
    import numpy as np

    from gbsbi.bank import BankSpec, simulate_bank
    from gbsbi.inference.config import TrainConfig
    from gbsbi.inference.infer import infer_to_files
    from gbsbi.inference.npe.config import settings
    from gbsbi.inference.pipeline import train_model
    from gbsbi.plots.bank import plot_bank
    from simulators.config import FRESH, ExperimentConfig, MeasurementPrior

    # No window ages: the pseudo-experiments are single fresh windows, and on a bank of the
    # demo's size and epochs a model with ages had not converged (its 90 % intervals covered
    # D on 63 % of them, against 80 % without ages).
    config, prior, nuisance = ExperimentConfig(), FRESH, MeasurementPrior()
    spec = BankSpec(config, prior, size.bank, seed, measurement="fast", nuisance=nuisance)
    bank = out / "bank.h5"
    with progress_bar(spec.n, "simulate", "map") as bar:
        simulate_bank(bank, spec, workers=2, progress=bar.update)
    print(f"wrote {bank}: {spec.n} maps simulated as measured (counts {nuisance.counts}, "
          f"N_pix {nuisance.n_pix}, beta {nuisance.beta})")
    for path in plot_bank(bank, out):
        print(f"wrote {path}")
    import h5py

    with h5py.File(bank, "r") as f:
        phis = {k: f[k][()] for k in ("phi_noiseless", "phi", "phi_corrected")}
    for name, label in (("phi_noiseless", "noiseless"), ("phi", "plain (measured)"),
                        ("phi_corrected", "noise-corrected")):
        print(f"Phi {label + ':':<18} min {{:.3f}}  Q1 {{:.3f}}  median {{:.3f}}  Q3 {{:.3f}}  "
              "max {:.3f}".format(*np.nanpercentile(phis[name], [0, 25, 50, 75, 100])))
    pseudo = _pseudo(out, size, seed)
    # what `gbsbi train --experimental` does: its adaptation weights and noise augmentation
    training, estimator = settings(TrainConfig(epochs=size.epochs, seed=seed), adapted=True)
    model = train_model(bank, out / "model", training, estimator, experimental=pseudo,
                        device="auto")
    result = infer_to_files(model, pseudo, out / "posteriors.nc", size.draws, seed,
                            warn=lambda line: print(f"warning: {line}", file=sys.stderr))
    _summary(result)
    _trust(out, size, seed)


def _trust(out: Path, size: DemoSize, seed: int) -> None:
    """Calibration on the pseudo-experiments, predictive checks of a few scans, and the report
    of the run folder, with the functions behind ``gbsbi check``, ``ppc`` and ``report``."""
    from gbsbi.group.config import GroupSettings
    from gbsbi.group.files import group_to_files
    from gbsbi.validation.check import check_to_files
    from gbsbi.validation.ppc_files import ppc_to_files
    from gbsbi.validation.report import write_report

    model, pseudo, posteriors = (out / n for n in
                                 ("model", "pseudo_experiments.h5", "posteriors.nc"))
    print(f"\n$ gbsbi check {model} {pseudo} --out {out / 'check'} --draws "
          f"{size.check_draws} --seed {seed}")
    check_to_files(model, pseudo, out / "check", draws=size.check_draws, seed=seed)
    print(f"\n$ gbsbi ppc {model} {pseudo} {posteriors} --out {out / 'ppc'} --scans "
          f"{size.ppc_scans} --draws {size.ppc_draws} --seed {seed}")
    ppc_to_files(model, pseudo, posteriors, out / "ppc", draws=size.ppc_draws,
                 scans=size.ppc_scans, seed=seed)
    print(f"\n$ gbsbi group {model} {pseudo} --out {out / 'groups.nc'} --law arrhenius "
          f"--shared sigma,c --draws {size.group_draws} --seed {seed}")
    group_to_files(model, pseudo, out / "groups.nc", law="arrhenius", shared=("sigma", "c"),
                   settings=GroupSettings(draws=size.group_draws, seed=seed),
                   warn=lambda line: print(f"warning: {line}", file=sys.stderr))
    report = write_report(out, out / "report.html")
    print(f"\nwrote {report}: the run on one page (open it in a browser)")


def _pseudo(out: Path, size: DemoSize, seed: int) -> Path:
    """Pseudo-experiments with the fast noise model, and their Phi table."""
    import numpy as np

    from gbsbi.pseudo import PseudoSpec, write_pseudo_experiments
    from simulators.config import ExperimentConfig, MeasurementPrior, Prior, SamplePrior

    setup = (ExperimentConfig(), Prior(), MeasurementPrior())
    spec = PseudoSpec(groups=size.groups, temperatures=size.temperatures, repeats=size.repeats,
                      arrhenius=True, mode="fast", seed=seed + 1)
    total = spec.groups * len(spec.temperatures) * spec.repeats
    path = out / "pseudo_experiments.h5"
    with progress_bar(total, "pseudo-experiments", "map") as bar:
        maps, extra = write_pseudo_experiments(path, spec, *setup, progress=bar.update,
                                               sample=SamplePrior())
    print(f"wrote {path}: {len(maps)} measured maps ({spec.counts} photons per pixel per "
          f"frame, {spec.n_pix} pixels)")
    print(f"Phi of the pseudo-experiments, each row the mean of {spec.repeats} repeats:")
    print(f"{'group':<8} {'T [K]':>6} {'Phi true':>9} {'plain':>7} {'corrected':>10}")
    for g in np.unique(maps.group):
        for t in spec.temperatures:
            k = (maps.group == g) & (maps.temperature == t)
            true, plain = np.mean(extra["phi_noiseless"][k]), np.mean(extra["phi"][k])
            corrected = np.nanmean(extra["phi_corrected"][k])
            print(f"{g:<8} {t:>6.0f} {true:>9.3f} {plain:>7.3f} {corrected:>10.3f}")
    return path


def _summary(result) -> None:  # noqa: ANN001 - PosteriorDraws
    """Coverage of the 90 % intervals and RMSE of the posterior means against the truth."""
    import numpy as np

    from gbsbi.validation.calibration import LEVEL, interval_contains, rmse
    from simulators.config import Prior

    prior = Prior()
    samples = prior.to_scale(result.theta.reshape(-1, *result.theta.shape[2:]))
    truth = prior.to_scale(result.truth)
    covered = interval_contains(samples, truth, LEVEL).mean(0)
    error = rmse(truth, samples.mean(0))
    n = len(truth)
    print(f"\nposteriors of {n} pseudo-experiments against their true values:")
    print(f"{'':<26}{'D [nm^2/s]':>12}{'log10 sigma':>13}{'c':>8}")
    print(f"{'90% intervals covering':<26}" + "".join(
        f"{v:>{w}.0%}" for v, w in zip(covered, (12, 13, 8), strict=True)))
    print(f"{'RMSE of posterior mean':<26}{error[0]:>12.2e}{error[1]:>13.3f}{error[2]:>8.3f}")
    low, high = prior.scale_bounds()
    widths = high - low
    prior_sd = np.array(widths) / np.sqrt(12)  # what the prior alone would give
    print(f"{'(prior sd)':<26}{prior_sd[0]:>12.2e}{prior_sd[1]:>13.3f}{prior_sd[2]:>8.3f}")
