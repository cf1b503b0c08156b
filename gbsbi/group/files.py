"""``gbsbi group`` as a function: the joint posterior of every group of a maps file, as ArviZ
InferenceData in NetCDF, a CSV per group, an Arrhenius plot and a corner plot per group
(docs/inference.md#group-posteriors).

The file's groups:

* ``posterior``: the group-level parameters (``D_ref`` [nm^2/s] and ``Ea`` [eV] under the
  Arrhenius law, the shared ones of D, sigma, c), dims (chain, draw, group); the parameters
  free per scan, dims (chain, draw, scan); ``D_scan``, each scan's D under the law;
* ``log_likelihood``: ``maps``, each scan's log q(u_i | x_i) - log p(u_i) at each draw, dims
  (chain, draw, scan), so that ``arviz.loo`` and ``arviz.compare`` compare laws;
* ``constant_data``: each scan's temperature, group and (synthetic data) true values;
* ``sample_stats``: each group's R-hat and bulk ESS per parameter, emcee's steps.

The root attributes name the model, the maps, the law, the shared parameters, the priors and
the seed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gbsbi.errors import GbsbiError
from gbsbi.group.law import NAMES, UNITS, GroupModel, GroupPrior
from gbsbi.group.sample import GroupDraws, GroupSettings, sample_group


def group_posterior(posterior, maps: np.ndarray, temperature: np.ndarray,  # noqa: ANN001
                    law: str = "none", shared: tuple[str, ...] = ("sigma", "c"),
                    prior: GroupPrior | None = None, settings: GroupSettings | None = None,
                    q: float | None = None,
                    age: np.ndarray | None = None):  # noqa: ANN201 - an ArviZ InferenceData
    """The joint posterior of one group of scans, in the idiom of ``load_posterior``.

    Args:
        posterior: the model's posterior (:func:`gbsbi.inference.load_posterior`).
        maps: the scans' two-time maps, shape (n, T, T), on the model's window.
        temperature: their temperatures in K, shape (n,).
        law: ``arrhenius`` or ``none`` (:mod:`gbsbi.group.law`).
        shared: the per-scan parameters the group shares.
        prior: the Arrhenius parameters' prior (default :class:`GroupPrior`).
        settings: the sampler's (default :class:`GroupSettings`).
        q: the maps' q in nm^-1 (default: the model's).
        age: the windows' ages in s, shape (n,) (default: 0), for a model with ages.

    Returns:
        ArviZ InferenceData (module docstring) with one group, named ``group``.
    """
    from gbsbi.inference.npe.likelihood import scan_log_likelihood

    temperature = np.asarray(temperature, dtype=np.float64)
    x = posterior.observe(maps, temperature=temperature, q=q, age=age).numpy()
    model = GroupModel(temperature, law, tuple(shared), posterior.model.spec.prior,
                       prior or GroupPrior())
    settings = settings or GroupSettings()
    draws = sample_group(model, scan_log_likelihood(posterior.model, x, settings.members),
                         settings)
    scans = np.array([f"scan {k}" for k in range(len(x))], dtype=object)
    return to_inference_data({"group": (model, draws, np.arange(len(x)))}, scans, temperature,
                             np.full(len(x), "group", dtype=object), None,
                             {"law": law, "shared": ",".join(shared),
                              "settings": json.dumps(settings.to_dict())})


def to_inference_data(groups: dict[str, tuple[GroupModel, GroupDraws, np.ndarray]],
                      scans: np.ndarray, temperature: np.ndarray, group_of: np.ndarray,
                      truth: np.ndarray | None, attrs: dict):  # noqa: ANN201
    """The InferenceData of the module docstring from each group's model, draws and scans
    (indices into ``scans``)."""
    from gbsbi.io.posteriors import arviz

    az = arviz()
    first = next(iter(groups.values()))
    model0, draws0 = first[0], first[1]
    chains, per_chain = draws0.z.shape[:2]
    names = list(groups)
    n_scans = len(scans)
    posterior = {name: np.full((chains, per_chain, len(names)), np.nan)
                 for name in model0.group_names}
    for name in (*(f"{n}_scan" for n in model0.scan_names), "D_scan"):
        posterior[name] = np.full((chains, per_chain, n_scans), np.nan)
    loglik = np.full((chains, per_chain, n_scans), np.nan)
    stats = {"steps": np.zeros(len(names)), "converged": np.zeros(len(names), dtype=bool)}
    stats |= {f"rhat_{n}": np.full(len(names), np.nan) for n in model0.group_names}
    stats |= {f"ess_bulk_{n}": np.full(len(names), np.nan) for n in model0.group_names}
    for g, (model, draws, index) in enumerate(groups.values()):
        values = model.physical(draws.z.reshape(-1, model.dim))
        for name in model.group_names:
            posterior[name][:, :, g] = values[name].reshape(chains, per_chain)
        for name in (*(f"{n}_scan" for n in model.scan_names), "D_scan"):
            posterior[name][:, :, index] = values[name].reshape(chains, per_chain, -1)
        loglik[:, :, index] = draws.log_likelihood
        stats["steps"][g], stats["converged"][g] = draws.steps, draws.converged
        for k, name in enumerate(model.group_names):
            stats[f"rhat_{name}"][g] = draws.rhat[k]
            stats[f"ess_bulk_{name}"][g] = draws.ess_bulk[k]
    dims = {name: ["group"] for name in model0.group_names}
    dims |= {name: ["scan"] for name in posterior if name.endswith("_scan")}
    constant = {"temperature": np.asarray(temperature, dtype=np.float64),
                "scan_group": np.asarray(group_of, dtype=str)}
    if truth is not None:
        constant |= {f"{n}_true": truth[:, k] for k, n in enumerate(NAMES)}
    data = az.from_dict(
        posterior=posterior, log_likelihood={"maps": loglik}, constant_data=constant,
        sample_stats=None, coords={"group": np.asarray(names, dtype=str),
                                   "scan": np.asarray(scans, dtype=str)},
        dims={**dims, "maps": ["scan"], **{k: ["scan"] for k in constant}},
    )
    for name in posterior:
        base = name[:-len("_scan")] if name.endswith("_scan") else name
        data.posterior[name].attrs["units"] = UNITS[base]
    data.constant_data["temperature"].attrs["units"] = "K"
    diagnostics = {g: {k: float(v[i]) for k, v in stats.items()} for i, g in enumerate(names)}
    attrs = dict(attrs, diagnostics=json.dumps(diagnostics))
    for group in data.groups():
        getattr(data, group).attrs.update({k: str(v) for k, v in attrs.items()})
    return data


def summary_rows(data, group: str) -> list[dict]:  # noqa: ANN001 - an InferenceData
    """One row per parameter of a group: mean, median, sd, 5 % and 95 % quantiles, R-hat and
    bulk ESS (ArviZ, the four chains)."""
    from gbsbi.io.posteriors import arviz

    az = arviz()
    post = data.posterior
    members = np.asarray(data.constant_data["scan_group"].values, dtype=str) == group
    rows = []
    for name in post.data_vars:
        if "group" in post[name].dims:
            values = post[name].sel(group=group)
            labels = [name]
        else:
            values = post[name].isel(scan=np.flatnonzero(members))
            labels = [f"{name}[{s}]" for s in values["scan"].values]
        stacked = values.values.reshape(values.shape[0], values.shape[1], -1)
        for k, label in enumerate(labels):
            chain = stacked[:, :, k]
            flat = chain.ravel()
            rows.append({"parameter": label, "units": post[name].attrs.get("units", ""),
                         "mean": float(flat.mean()), "median": float(np.median(flat)),
                         "sd": float(flat.std(ddof=1)),
                         "q05": float(np.quantile(flat, 0.05)),
                         "q95": float(np.quantile(flat, 0.95)),
                         "r_hat": float(az.rhat(chain)), "ess_bulk": float(az.ess(chain))})
    return rows


def group_to_files(
    model_dir: str | os.PathLike, maps: str | os.PathLike, out: str | os.PathLike, *,
    law: str = "none", shared: tuple[str, ...] = ("sigma", "c"),
    prior: GroupPrior | None = None, settings: GroupSettings | None = None,
    include_flagged: bool = False, plots: bool = True, overwrite: bool = False,
    log: Callable[[str], None] = print, warn: Callable[[str], None] = print,
) -> Path:
    """``gbsbi group``: one joint posterior per ``group`` of the maps file (module docstring);
    scans flagged as unlike the simulations are left out unless ``include_flagged``."""
    from gbsbi.inference.data import scan_inputs
    from gbsbi.inference.model import load_model
    from gbsbi.inference.npe.likelihood import chosen_members, scan_log_likelihood
    from gbsbi.inference.npe.predict import posterior_draws
    from gbsbi.io.atomic import atomic_path, check_new
    from gbsbi.io.posteriors import unique_names, without_draws, write_csv
    from gbsbi.validation.misspecification import scan_tests
    from gbsbi.validation.statistics import PPC_DRAWS

    out = check_new(out, overwrite)
    prior, settings = prior or GroupPrior(), settings or GroupSettings()
    model = load_model(model_dir)
    if model.spec.kind != "npe":
        raise GbsbiError(f"{model_dir}: a point model has no posterior to join; use a "
                         "posterior estimator")
    chosen_members(model, settings.members)  # a --members the model lacks, before the work
    scans = scan_inputs(maps, model.spec.experiment, model.spec.inputs)
    for note in scans.notes:
        log(note)
    names = unique_names(scans.maps.names())
    groups = scans.maps.group if scans.maps.group is not None else \
        np.full(len(names), "all", dtype=object)
    # a scan whose posterior lies outside the prior has no draws and no likelihood to join,
    # flagged or not
    drawn = posterior_draws(model, scans.x, PPC_DRAWS, settings.seed)
    keep = ~without_draws(drawn)
    if not keep.all():
        warn(f"left out {int((~keep).sum())} scan(s) whose posterior lies outside the prior "
             f"(far outside the model, no draws): {', '.join(names[~keep])}")
    if not include_flagged:
        tested = scan_tests(model, scans.x, scans.maps.C, scans.maps.temperature, drawn,
                            settings.seed, scans.maps.ages)
        flagged = keep & (tested.flagged if tested is not None else False)
        if flagged.any():
            keep &= ~flagged
            warn(f"left out {int(flagged.sum())} scan(s) flagged as unlike the simulations: "
                 f"{', '.join(names[flagged])} (--include-flagged keeps them)")
    joined = {}
    for group in dict.fromkeys(map(str, groups)):
        mine = np.asarray(groups, dtype=str) == group
        index = np.flatnonzero(mine & keep)
        if len(index) == 0:
            warn(f"group {group!r}: no scan left")
            continue
        if (law == "arrhenius" and len(np.unique(scans.maps.temperature[index])) < 2
                and len(np.unique(scans.maps.temperature[mine])) >= 2):
            warn(f"group {group!r}: left out, its scans that are not flagged are all at "
                 f"{scans.maps.temperature[index][0]:g} K (Ea needs two temperatures)")
            continue
        _refuse_shared_data(scans.maps.C[index], names[index], group)
        index = _without_overlaps(index, scans.maps, model.spec.experiment.window, group, warn)
        group_model = GroupModel(scans.maps.temperature[index], law, shared,
                                 model.spec.prior, prior)
        draws = sample_group(group_model,
                             scan_log_likelihood(model, scans.x[index], settings.members),
                             settings)
        joined[group] = (group_model, draws, index)
        log(f"group {group!r}: {len(index)} scans, {draws.steps} emcee steps, R-hat at most "
            f"{np.nanmax(draws.rhat):.3f}, bulk ESS at least {np.nanmin(draws.ess_bulk):.0f} "
            f"({draws.seconds:.1f} s)" + ("" if draws.converged else
                                          "; not converged: raise --max-steps"))
    if not joined:
        raise GbsbiError(f"{maps}: no group with a scan left to join")
    attrs = {"model": str(model_dir), "model_hash": model.hash, "maps": str(maps),
             "maps_hash": scans.content_hash, "law": law, "shared": ",".join(shared),
             "prior": json.dumps({"d_ref": prior.d_ref, "ea": prior.ea, "t_ref": prior.t_ref}),
             "settings": json.dumps(settings.to_dict())}
    data = to_inference_data(joined, names, scans.maps.temperature, groups, scans.maps.theta,
                             attrs)
    with atomic_path(out) as tmp:
        data.to_netcdf(str(tmp), engine="h5netcdf")
    for group in joined:
        rows = summary_rows(data, group)
        write_csv(out.with_name(f"{out.stem}-{_safe(group)}.csv"), rows)
        log(f"group {group}: " + "; ".join(
            f"{r['parameter']} {r['median']:.3g} [{r['q05']:.3g}, {r['q95']:.3g}]"
            for r in rows if "[" not in r["parameter"]))
    if plots:
        from gbsbi.plots.group import arrhenius_plot, group_corner

        folder = out.with_name(out.stem + "-plots")
        folder.mkdir(exist_ok=True)
        for group, (group_model, _, index) in joined.items():
            per_scan = posterior_draws(model, scans.x[index], 1000, settings.seed)[..., 0]
            arrhenius_plot(data, group, group_model, per_scan,
                           folder / f"arrhenius_{_safe(group)}.png", index)
            group_corner(data, group, folder / f"corner_{_safe(group)}.png")
        log(f"wrote the Arrhenius and corner plots of {len(joined)} group(s) to {folder}")
    log(f"wrote {out} ({len(joined)} group(s), {settings.draws} draws each)")
    return out


def _safe(name: str) -> str:
    from gbsbi.plots.posterior import safe_name

    return safe_name(name)


def _without_overlaps(index: np.ndarray, maps, window: float, group: str,  # noqa: ANN001
                      warn: Callable[[str], None]) -> np.ndarray:
    """The scans of ``index`` less the windows that overlap an earlier window of the same
    measurement (scan name ``MEASUREMENT@AGEs`` from ``gbsbi import --window``, or the same name):
    overlapping windows share frames, and the product would count them twice. Windows are kept
    in order of age, each at least one window length after the last one kept."""
    if maps.age is None:
        return index
    measurement = np.array([str(name).rsplit("@", 1)[0] for name in maps.names()[index]])
    keep = np.ones(len(index), dtype=bool)
    for source in dict.fromkeys(measurement):
        mine = np.flatnonzero(measurement == source)
        last = -np.inf
        for k in mine[np.argsort(maps.age[index[mine]], kind="stable")]:
            if maps.age[index[k]] < last + window * (1 - 1e-9):
                keep[k] = False
            else:
                last = maps.age[index[k]]
    if not keep.all():
        dropped = maps.names()[index[~keep]]
        warn(f"group {group!r}: left out {len(dropped)} window(s) that overlap an earlier window "
             f"of the same measurement (they share frames): {', '.join(map(str, dropped))}")
    return index[keep]


def _refuse_shared_data(C: np.ndarray, names: np.ndarray, group: str) -> None:
    """A group's scans must be independent: two scans with the same map share their data."""
    flat = C.reshape(len(C), -1)
    for i in range(len(C)):
        for j in range(i + 1, len(C)):
            if np.array_equal(flat[i], flat[j], equal_nan=True):
                raise GbsbiError(f"group {group!r}: scans {names[i]!r} and {names[j]!r} hold "
                                 "the same map (they share data, and their product would count "
                                 "it twice); keep one of them")
