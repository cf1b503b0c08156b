"""One self-contained HTML page of a run, for the beamline scientist who reads it afterwards.

A run folder (RUN_DIR) holds what the commands wrote for one maps file:

=======================  ==============================================  ==========
path                     from                                            needed
=======================  ==============================================  ==========
``posteriors.nc``        ``gbsbi infer MODEL MAPS --out RUN/posteriors.nc``  yes
``posteriors-plots/``    the same (corner plots, ``intervals.png``)      no
``check/``               ``gbsbi check MODEL TEST.h5 --out RUN/check``   no
``misspec/``             ``gbsbi misspec MODEL MAPS --out RUN/misspec``  no
``ppc/``                 ``gbsbi ppc MODEL MAPS RUN/posteriors.nc --out RUN/ppc``  no
``crosscheck/``          ``gbsbi crosscheck MODEL MAPS --out RUN/crosscheck``  no
``groups.nc``            ``gbsbi group MODEL MAPS --out RUN/groups.nc``  no
=======================  ==============================================  ==========

(a folder with a single other ``*.nc`` posterior file and its ``-plots`` folder works too).
The page has the per-scan table (posterior median and 90 % interval, misspecification flag,
predictive p-value, cross-check C2ST), then whatever parts exist: intervals, calibration,
misspecification, cross-check, and per scan its corner plot, predictive check and overlay.
Images are embedded as base64 PNG; the page needs no network, no script and no other file.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

import numpy as np

from gbsbi.errors import GbsbiError
from gbsbi.io.atomic import atomic_path
from gbsbi.io.posteriors import NAMES, draws_from_data, read_posterior, summary_rows
from gbsbi.plots.posterior import safe_name

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; }
th { background: #eee; } td.name { text-align: left; }
tr.flag td { background: #fde2e2; }
b.flag { color: #b00; }
img { max-width: 100%; border: 1px solid #ddd; margin: 4px 0; }
.note { color: #555; font-size: 13px; }
"""


def _posterior_file(run_dir: Path) -> Path:
    if (run_dir / "posteriors.nc").exists():
        return run_dir / "posteriors.nc"
    found = sorted(run_dir.glob("*.nc"))
    if len(found) != 1:
        raise GbsbiError(f"{run_dir}: expected posteriors.nc (from `gbsbi infer ... --out "
                         f"{run_dir}/posteriors.nc`), found {len(found)} .nc files")
    return found[0]


def _json(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise GbsbiError(f"{path}: not readable JSON ({err})") from None


def _img(path: Path, alt: str) -> str:
    if not path.exists():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _num(value: float, fmt: str = ".3g") -> str:
    return "&ndash;" if value is None or not np.isfinite(value) else format(value, fmt)


def _table(rows: list[dict], alpha: float, ppc: dict | None, cross: dict | None,
           truth: np.ndarray | None) -> str:
    head = ["scan", "group", "T [K]", "&Phi;<sub>corr</sub>"]
    head += [f"{n} median [5 %, 95 %]" for n in ("D [nm&sup2;/s]", "&sigma; [J/m&sup2;]", "c")]
    head += ["misspec p", "PPC p(&Phi;<sub>corr</sub>)", "C2ST emcee / map"]
    if truth is not None:
        head.append("true (D, &sigma;, c)")
    lines = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for k, r in enumerate(rows):
        p = r.get("misspec_p")
        flagged = bool(r.get("flagged", False))
        cells = [f'<td class="name">{html.escape(r["scan"])}</td>',
                 f'<td class="name">{html.escape(r["group"])}</td>', f"<td>{r['T']:.1f}</td>",
                 f"<td>{_num(r['phi_corrected'], '.3f')}</td>"]
        cells += [f"<td>{_num(r[f'{n}_median'])} [{_num(r[f'{n}_q05'])}, "
                  f"{_num(r[f'{n}_q95'])}]</td>" for n in NAMES]
        cells.append("<td>&ndash;</td>" if p is None else
                     f"<td>{p:.3f}{' <b>flagged: not to be trusted</b>' if flagged else ''}"
                     + (f" ({html.escape(r['flagged_by'])})" if flagged and r.get("flagged_by")
                        else "") + "</td>")
        scan_ppc = (ppc or {}).get("scans", {}).get(r["scan"])
        cells.append(f"<td>{_num(scan_ppc['p_phi_corrected'], '.2f')}</td>" if scan_ppc
                     else "<td>&ndash;</td>")
        scan_cc = (cross or {}).get("scans", {}).get(r["scan"])
        if scan_cc and "skipped" not in scan_cc:
            cells.append(f"<td>{scan_cc['c2st_emcee_vs_phi_npe']:.2f} / "
                         f"{scan_cc['c2st_map_vs_phi_npe']:.2f}</td>")
        else:
            cells.append("<td>&ndash;</td>")
        if truth is not None:
            cells.append("<td>" + ", ".join(_num(v) for v in truth[k]) + "</td>")
        lines.append(f'<tr{" class=flag" if flagged else ""}>' + "".join(cells) + "</tr>")
    return "\n".join(lines) + "</table>"


def _check_section(run_dir: Path) -> str:
    check = _json(run_dir / "check" / "check.json")
    if check is None:
        return ""
    names = check["parameters"]
    rows = "".join(
        f"<tr><td class=name>{n}</td><td>{check['r2'][k]:.3f}</td><td>{check['rmse'][k]:.3g}"
        f"</td><td>{check['coverage_90'][k]:.3f}</td><td>{check['sbc']['ks_pvals'][k]:.3f}"
        "</td></tr>" for k, n in enumerate(names))
    hpd = dict(zip(check["levels"], check["hpd_coverage"], strict=True))
    cfg = check.get("configuration", {})
    return (
        "<h2>Calibration on simulations</h2>"
        f"<p class=note>{check['n']} simulations of {html.escape(str(cfg.get('test', '')))} x "
        f"{check['draws']} draws. Joint highest-density coverage at 0.5 / 0.9: "
        f"{hpd[0.5]:.3f} / {hpd[0.9]:.3f}; TARP ATC {check['tarp']['atc']:+.3f}, KS p "
        f"{check['tarp']['ks_pvalue']:.3f}.</p><table><tr><th>parameter</th><th>R&sup2;</th>"
        "<th>RMSE</th><th>90 % coverage</th><th>SBC KS p</th></tr>" + rows + "</table>"
        + "".join(_img(run_dir / "check" / f"{name}.png", name)
                  for name in ("coverage", "sbc_ranks", "tarp", "predicted")))


def _misspec_section(run_dir: Path, draws) -> str:  # noqa: ANN001
    misspec = _json(run_dir / "misspec" / "misspec.json")
    parts = ["<h2>Misspecification</h2>"]
    if draws.misspecification is not None:
        n = int(draws.flagged.sum())
        if n:
            parts.append(f"<p>{n} of {len(draws.scan)} scans flagged (p &lt; {draws.alpha:g}): "
                         "their embedding is unlike those of the simulations, so the model may "
                         "not describe them and their posteriors are not to be trusted.</p>")
        else:
            parts.append(f"<p>No scan of {len(draws.scan)} flagged (every p &ge; "
                         f"{draws.alpha:g}).</p>")
    else:
        parts.append("<p>The model has no misspecification reference: no scan was tested.</p>")
    if misspec is not None and "set" in misspec:
        s = misspec["set"]
        parts.append(f"<p class=note>Whole file (MMD on the embedding): MMD {s['mmd']:.4f}, "
                     f"p = {s['p_value']:.3f}. A set of a few materials is not a draw from the "
                     "prior predictive, so this test rejects such sets even when each scan is "
                     "in the model; the per-scan p-values are the ones to read.</p>")
        parts.append(_img(run_dir / "misspec" / "misspec.png", "misspecification"))
    return "".join(parts)


def _cross_section(run_dir: Path, cross: dict | None) -> str:
    if cross is None or not cross.get("summary"):
        return ""
    s = cross["summary"]
    return ("<h2>Cross-check with Phi alone</h2>"
            f"<p class=note>emcee through the Phi surrogate against an NPE on (Phi, T): median "
            f"C2ST {s['c2st_emcee_vs_phi_npe']['median']:.3f} (0.5 = agreement); map-based "
            f"against Phi-only: median {s['c2st_map_vs_phi_npe']['median']:.3f} (above 0.5: "
            f"the map adds information). R-hat at most {s['rhat_max']:.4f}, bulk ESS at least "
            f"{s['ess_bulk_min']:.0f}, emcee {s['emcee_seconds']['mean']:.1f} s per scan.</p>"
            + _img(run_dir / "crosscheck" / "crosscheck.png", "cross-check"))


def _groups_section(run_dir: Path) -> str:
    """A section per group of ``groups.nc`` (``gbsbi group``): its parameters and figures."""
    import csv

    if not (run_dir / "groups.nc").exists():
        return ""
    plots = run_dir / "groups-plots"
    parts = ["<h2>Groups</h2><p class=note>Joint posteriors of each group's scans "
             "(gbsbi group): the product of the scans' posteriors, sampled with emcee.</p>"]
    for table in sorted(run_dir.glob("groups-*.csv")):
        group = table.stem[len("groups-"):]
        with open(table, newline="") as f:
            rows = [r for r in csv.DictReader(f) if "[" not in r["parameter"]]
        cells = "".join(
            f"<tr><td class=name>{html.escape(r['parameter'])}</td>"
            f"<td>{html.escape(r['units'])}</td><td>{float(r['median']):.3g}</td>"
            f"<td>[{float(r['q05']):.3g}, {float(r['q95']):.3g}]</td>"
            f"<td>{float(r['r_hat']):.3f}</td><td>{float(r['ess_bulk']):.0f}</td></tr>"
            for r in rows)
        parts.append(f"<h3>{html.escape(group)}</h3><table><tr><th>parameter</th><th>units"
                     "</th><th>median</th><th>90 %</th><th>R-hat</th><th>ESS</th></tr>"
                     + cells + "</table>"
                     + _img(plots / f"arrhenius_{group}.png", f"Arrhenius {group}")
                     + _img(plots / f"corner_{group}.png", f"corner {group}"))
    return "".join(parts)


def build_report(run_dir: str | os.PathLike) -> str:
    """The HTML page of a run folder (module docstring)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GbsbiError(f"{run_dir}: no such run folder")
    nc = _posterior_file(run_dir)
    data = read_posterior(nc)
    draws = draws_from_data(data)
    rows = summary_rows(draws)
    for r, value in zip(rows, draws.phi_corrected, strict=True):
        r["phi_corrected"] = float(value)
    ppc = _json(run_dir / "ppc" / "ppc.json")
    cross = _json(run_dir / "crosscheck" / "crosscheck.json")
    attrs = data.posterior.attrs
    plots = nc.with_name(nc.stem + "-plots")
    body = [
        f"<h1>gbsbi run: {html.escape(str(attrs.get('maps', nc.name)))}</h1>",
        f"<p class=note>model {html.escape(str(attrs.get('model', '')))} (hash "
        f"{html.escape(str(attrs.get('model_hash', ''))[:12])}), maps hash "
        f"{html.escape(str(attrs.get('maps_hash', ''))[:12])}, "
        f"{draws.theta.shape[0] * draws.theta.shape[1]} draws per scan, estimator "
        f"{html.escape(str(attrs.get('estimator', '')))}.</p>",
        "<h2>Scans</h2>",
        _table(rows, draws.alpha, ppc, cross, draws.truth),
        _img(plots / "intervals.png", "intervals"),
        _misspec_section(run_dir, draws),
        _groups_section(run_dir),
        _check_section(run_dir),
        _cross_section(run_dir, cross),
        "<h2>Per scan</h2>",
    ]
    for r in sorted(rows, key=lambda row: not row.get("flagged", False)):
        name = safe_name(r["scan"])
        images = [_img(plots / f"residual_{name}.png", f"residual {r['scan']}"),
                  _img(plots / f"corner_{name}.png", f"corner {r['scan']}"),
                  _img(run_dir / "ppc" / f"ppc_{name}.png", f"ppc {r['scan']}"),
                  _img(run_dir / "crosscheck" / f"overlay_{name}.png", f"overlay {r['scan']}")]
        if any(images):
            flagged = r.get("flagged", False)
            label = html.escape(r["scan"]) + (
                " <b class=flag>flagged: not to be trusted (flagged by "
                f"{html.escape(r.get('flagged_by') or 'the combined test')}; its predictive "
                "residual map first)</b>" if flagged else "")
            body.append(f"<details{' open' if flagged else ''}><summary>{label}</summary>"
                        + "".join(images) + "</details>")
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>gbsbi report"
            f"</title><style>{STYLE}</style></head><body>" + "\n".join(body)
            + "</body></html>")


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike,
                 overwrite: bool = True) -> Path:
    """Write the page of ``run_dir`` to ``out`` atomically (``gbsbi report``; ``gbsbi demo``
    calls it too); an existing ``out`` is refused unless ``overwrite``."""
    from gbsbi.io.atomic import check_new

    check_new(out, overwrite)
    page = build_report(run_dir)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return Path(out)
