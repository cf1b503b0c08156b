"""`gbsbi train --estimator point`, `gbsbi infer` on point models and `gbsbi embed`, end to end
on a tiny bank: the model directory with one head per group, the CSV of point estimates, the
refusals (one line, exit status 2, nothing written), and the UMAP figure for both kinds of
model."""

import csv
import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from gbsbi.bank import BankSpec, simulate_bank  # noqa: E402
from gbsbi.cli import main  # noqa: E402
from gbsbi.io.mapsfile import Maps, read_maps, write_maps  # noqa: E402
from gbsbi.pseudo import PseudoSpec, write_pseudo_experiments  # noqa: E402
from simulators.config import ExperimentConfig, MeasurementPrior, Prior  # noqa: E402
from tests.test_train_infer import run_error  # noqa: E402 - exit 2, one line, no traceback


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A 300-map measured bank, 8 pseudo-experiments in 2 groups, and three models trained
    for one epoch: point (adapted, fine-tuned per group), point (vanilla) and NPE."""
    root = tmp_path_factory.mktemp("point")
    bank = root / "bank.h5"
    simulate_bank(bank, BankSpec(ExperimentConfig(), Prior(), 300, 1, block_size=150,
                                 measurement="fast"))
    pseudo = root / "pseudo.h5"
    write_pseudo_experiments(pseudo, PseudoSpec(groups=2, temperatures=(320.0, 420.0),
                                                repeats=2, mode="fast", seed=4),
                             ExperimentConfig(), Prior(), MeasurementPrior())
    torch.set_num_threads(1)
    common = ["--epochs", "1", "--cache", str(root / "cache")]
    assert main(["train", str(bank), "--estimator", "point", "--out", str(root / "point"),
                 "--experimental", str(pseudo), "--adapt-epochs", "1", "--fine-tune-groups",
                 "--fine-tune-steps", "20", *common]) == 0
    assert main(["train", str(bank), "--estimator", "point", "--out", str(root / "vanilla"),
                 *common]) == 0
    assert main(["train", str(bank), "--out", str(root / "npe"), *common]) == 0
    return {"root": root, "bank": bank, "pseudo": pseudo}


def test_point_model_directory_holds_one_hashed_head_per_group(work):
    model = work["root"] / "point"
    assert {p.name for p in model.iterdir()} == {"model.json", "weights.pt", "surrogate.pt",
                                                  "history.json", "heads"}
    meta = json.loads((model / "model.json").read_text())
    assert meta["estimator"] == "point" and meta["flow"] is None
    assert meta["group_heads"] == {"group-1": "heads/group-1.pt", "group-2": "heads/group-2.pt"}
    for name in ("weights.pt", "surrogate.pt", "heads/group-1.pt", "heads/group-2.pt"):
        assert meta["weights_sha256"][name] == hashlib.sha256(
            (model / name).read_bytes()).hexdigest()
    point = meta["point"]
    assert point["adaptation"]["coral_weight"] > 0 and point["adaptation"]["phi_weight"] > 0
    assert point["fine_tune"]["steps"] == 20 and meta["training"]["coral_weight"] == 0
    assert point["adaptation"]["epochs"] == 1 and meta["training"]["epochs"] == 1
    assert meta["experimental"]["n"] == 8 and set(meta["fine_tuning"]) == {"group-1", "group-2"}
    history = json.loads((model / "history.json").read_text())
    assert [(r["stage"], r["epoch"]) for r in history] == [(0, 1), (1, 1)]
    assert history[0]["coral"] == 0 and history[1]["coral"] > 0 and history[1]["phi"] > 0
    # fine-tuning moved the heads' last two layers only (the default)
    own = torch.load(model / "weights.pt", weights_only=True)
    head = torch.load(model / "heads/group-1.pt", weights_only=True)
    changed = {k for k, v in head.items() if not torch.equal(v, own[f"head.{k}"])}
    assert changed == {"net.2.weight", "net.2.bias", "net.4.weight", "net.4.bias"}
    vanilla = json.loads((work["root"] / "vanilla" / "model.json").read_text())
    assert vanilla["point"]["adaptation"] is None and vanilla["group_heads"] == {}
    assert not (work["root"] / "vanilla" / "heads").exists()


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_infer_on_a_point_model_writes_point_estimates_with_each_groups_head(work, capsys):
    out = work["root"] / "est.nc"
    capsys.readouterr()
    assert main(["infer", str(work["root"] / "point"), str(work["pseudo"]), "--out",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    assert "point estimates" in printed and "no intervals" in printed
    assert not out.exists() and not (work["root"] / "est-plots").exists()
    rows = _rows(out.with_suffix(".csv"))
    maps = read_maps(work["pseudo"])
    assert [r["scan"] for r in rows] == list(maps.scan)
    assert list(rows[0]) == ["scan", "group", "T", "D", "sigma", "c", "head"]
    assert [r["head"] for r in rows] == [f"group {g}" for g in maps.group]
    prior = Prior()
    values = np.array([[float(r[n]) for n in ("D", "sigma", "c")] for r in rows])
    assert np.all(values >= prior.low) and np.all(values <= prior.high)
    record = json.loads(out.with_suffix(".json").read_text())
    meta = (work["root"] / "point" / "model.json").read_bytes()
    assert record["model_hash"] == hashlib.sha256(meta).hexdigest()
    assert record["estimator"] == "point" and len(record["maps_hash"]) == 64
    # the adapted model's own head gives other estimates than the fine-tuned heads
    own = work["root"] / "own.csv"
    assert main(["infer", str(work["root"] / "point"), str(work["pseudo"]), "--out", str(own),
                 "--head", "global"]) == 0
    own_rows = _rows(own)
    assert {r["head"] for r in own_rows} == {"adapted"}
    assert any(a["sigma"] != b["sigma"] for a, b in zip(rows, own_rows, strict=True))
    err = run_error(capsys, ["infer", str(work["root"] / "point"), str(work["pseudo"]),
                             "--out", str(out)])
    assert "exists; pass --overwrite" in err


def test_infer_point_estimates_equal_the_regressors_in_python(work):
    from gbsbi.inference.data import scan_inputs
    from gbsbi.inference.model import load_model
    from gbsbi.inference.point.network import predict
    from gbsbi.inference.point.predict import group_heads, point_estimates

    model = load_model(work["root"] / "point")
    scans = scan_inputs(work["pseudo"], model.spec.experiment, model.spec.inputs)
    estimates, notes = point_estimates(model, scans, "auto")
    first = scans.maps.group == "group-1"
    u = predict(model.network, torch.as_tensor(scans.x[first]), group_heads(model)["group-1"])
    np.testing.assert_allclose(estimates.theta[first],
                               model.spec.prior.from_unit(u.double().numpy()), rtol=1e-12)
    assert notes == []


def test_a_point_model_has_no_posterior_in_python(work):
    from gbsbi.errors import GbsbiError
    from gbsbi.inference import load_posterior

    with pytest.raises(GbsbiError, match="has no posterior"):
        load_posterior(work["root"] / "point")


def test_maps_of_groups_without_a_head_use_the_models_own_with_a_note(work, capsys):
    maps = read_maps(work["pseudo"])
    other = work["root"] / "regrouped.h5"
    group = np.where(maps.group == "group-1", "group-1", "group-9")
    write_maps(other, Maps(maps.C, maps.t, maps.temperature, maps.q, maps.scan, group))
    capsys.readouterr()
    assert main(["infer", str(work["root"] / "point"), str(other), "--out",
                 str(work["root"] / "regrouped.csv")]) == 0
    assert "no fine-tuned head for group(s) 'group-9'" in capsys.readouterr().err
    heads = [r["head"] for r in _rows(work["root"] / "regrouped.csv")]
    assert heads == ["group group-1" if g == "group-1" else "adapted" for g in group]
    err = run_error(capsys, ["infer", str(work["root"] / "point"), str(other), "--out",
                             str(work["root"] / "bad.csv"), "--head", "group"])
    assert "no head for group 'group-9'" in err
    assert not (work["root"] / "bad.csv").exists()


def test_a_model_without_group_heads_refuses_group_head_requests(work, capsys):
    for model in ("vanilla", "npe"):
        err = run_error(capsys, ["infer", str(work["root"] / model), str(work["pseudo"]),
                                 "--out", str(work["root"] / "bad.csv"), "--head", "group"])
        assert ("no per-group heads" if model == "vanilla" else "has no heads") in err
    assert not (work["root"] / "bad.csv").exists() and not (work["root"] / "bad.json").exists()


def test_train_refuses_fine_tuning_it_cannot_do_before_writing(work, capsys):
    root, bank, pseudo = work["root"], str(work["bank"]), str(work["pseudo"])
    maps = read_maps(pseudo)
    ungrouped = root / "ungrouped.h5"
    write_maps(ungrouped, Maps(maps.C, maps.t, maps.temperature, maps.q, maps.scan))
    point = ["train", bank, "--estimator", "point", "--fine-tune-groups"]
    cases = [
        ([*point, "--out", str(root / "f1"), "--experimental", str(ungrouped)],
         "has no 'group' dataset"),
        ([*point, "--out", str(root / "f2")], "--fine-tune-groups needs --experimental"),
        ([*point, "--out", str(root / "f3"), "--experimental", pseudo, "--phi-weight", "0"],
         "positive --phi-weight"),
        ([*point, "--out", str(root / "f4"), "--experimental", pseudo, "--fine-tune-layers",
          "4"], "cannot update the last 4 layers"),
        (["train", bank, "--out", str(root / "f5"), "--fine-tune-groups"],
         "--fine-tune-groups applies to --estimator point only"),
        (["train", bank, "--out", str(root / "f6"), "--adapt-learning-rate", "0.1"],
         "--adapt-learning-rate applies to --estimator point only"),
    ]
    for argv, message in cases:
        assert message in run_error(capsys, argv)
    assert not any((root / f"f{k}").exists() for k in range(1, 7))


def test_a_point_model_with_a_missing_or_changed_head_is_refused(work, capsys):
    for name, change in (("nohead", "missing"), ("badhead", "tampered")):
        model = work["root"] / name
        shutil.copytree(work["root"] / "point", model)
        if change == "missing":
            (model / "heads" / "group-2.pt").unlink()
        else:
            with open(model / "heads" / "group-2.pt", "ab") as f:
                f.write(b"\0")
        err = run_error(capsys, ["infer", str(model), str(work["pseudo"]), "--out",
                                 str(work["root"] / "bad.csv")])
        assert ("heads/group-2.pt is missing" if change == "missing" else "SHA-256 differs") \
            in err
    assert not (work["root"] / "bad.csv").exists()


@pytest.mark.parametrize("kind", ["point", "npe"])
def test_embed_writes_a_umap_figure_with_the_hashes(work, capsys, kind):
    from PIL import Image

    out = work["root"] / f"umap-{kind}.png"
    capsys.readouterr()
    assert main(["embed", str(work["root"] / kind), str(work["pseudo"]), "--out", str(out),
                 "--n-sim", "120"]) == 0  # the bank is the model's, from its model.json
    assert "UMAP of 128 feature vectors" in capsys.readouterr().out
    text = Image.open(out).text
    meta = (work["root"] / kind / "model.json").read_bytes()
    assert text["model_hash"] == hashlib.sha256(meta).hexdigest() and text["n_sim"] == "120"
    with h5py.File(work["bank"], "r") as f:
        assert text["bank_content_hash"] == f.attrs["content_hash"]
    assert "exists; pass --overwrite" in run_error(
        capsys, ["embed", str(work["root"] / kind), str(work["pseudo"]), "--out", str(out)])
    assert "name it *.png" in run_error(
        capsys, ["embed", str(work["root"] / kind), str(work["pseudo"]), str(work["bank"]),
                 "--out", str(work["root"] / "umap.jpg")])


def test_bank_sample_reads_the_same_inputs_as_the_whole_bank(work):
    from gbsbi.inference.data import bank_inputs, bank_sample
    from gbsbi.inference.inputs import InputConfig

    inputs = InputConfig(32, 2.0)
    x, theta, setup = bank_sample(work["bank"], inputs, 50, seed=3)
    whole = bank_inputs(work["bank"], inputs, cache=work["root"] / "cache")
    pick = np.sort(np.random.default_rng(3).permutation(300)[:50])
    assert x.shape == (50, whole.x.shape[1]) and setup.n == 300
    np.testing.assert_array_equal(theta, whole.theta[pick])
    np.testing.assert_allclose(x, whole.x[pick], rtol=1e-6, atol=1e-7)
