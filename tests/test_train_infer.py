"""`gbsbi train` and `gbsbi infer` end to end on a tiny bank, the posterior file read back with
ArviZ, the Python API, and bad input: one line, exit status 2, no partial output."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from gbsbi.bank import BankSpec, simulate_bank  # noqa: E402
from gbsbi.cli import main  # noqa: E402
from gbsbi.io.mapsfile import read_maps, write_maps  # noqa: E402
from gbsbi.pseudo import PseudoSpec, write_pseudo_experiments  # noqa: E402
from simulators.config import ExperimentConfig, MeasurementPrior, Prior  # noqa: E402


def _pseudo(path: Path, config: ExperimentConfig | None = None) -> Path:
    config = config or ExperimentConfig()
    spec = PseudoSpec(groups=2, temperatures=(320.0, 420.0), repeats=1, mode="fast", seed=4)
    write_pseudo_experiments(path, spec, config, Prior(), MeasurementPrior())
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A 400-map measured bank, 4 pseudo-experiments and a model trained for 2 epochs."""
    root = tmp_path_factory.mktemp("npe")
    bank = root / "bank.h5"
    simulate_bank(bank, BankSpec(ExperimentConfig(), Prior(), 400, 1, block_size=200,
                                 measurement="fast"))
    pseudo = _pseudo(root / "pseudo.h5")
    torch.set_num_threads(1)
    assert main(["train", str(bank), "--out", str(root / "model"), "--epochs", "2"]) == 0
    return {"root": root, "bank": bank, "pseudo": pseudo, "model": root / "model"}


def run_error(capsys, argv: list[str]) -> str:
    """A command that must fail as a user error: exit 2, one line on stderr, no traceback."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_model_directory_holds_weights_configuration_and_history(work):
    model = work["model"]
    assert {p.name for p in model.iterdir()} == {"model.json", "weights.pt", "surrogate.pt",
                                                  "history.json", "misspecification.json",
                                                  "misspecification.pt", "members"}
    # an ensemble of three by default: members 1 and 2 beside weights.pt (member 0)
    assert sorted(p.name for p in (model / "members").iterdir()) == ["1.pt", "2.pt"]
    meta = json.loads((model / "model.json").read_text())
    with h5py.File(work["bank"], "r") as f:
        assert meta["bank"]["content_hash"] == f.attrs["content_hash"]
    assert meta["experimental"] is None and meta["training"]["coral_weight"] == 0
    assert meta["experiment"] == ExperimentConfig().to_dict()
    assert meta["members"] == 3
    history = json.loads((model / "history.json").read_text())
    assert [(r["stage"], r["epoch"]) for r in history] == [(k, e) for k in range(3)
                                                             for e in (1, 2)]
    for name in ("weights.pt", "members/1.pt", "members/2.pt"):
        state = torch.load(model / name, weights_only=True)
        assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_infer_writes_a_netcdf_that_arviz_reads_a_csv_and_plots(work, capsys):
    out = work["root"] / "post.nc"
    assert main(["infer", str(work["model"]), str(work["pseudo"]), "--out", str(out),
                 "--draws", "400", "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert "D [nm^2/s]" in printed and "g1-T320-r1" in printed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az
    data = az.from_netcdf(out)
    maps = read_maps(work["pseudo"])
    post = data.posterior
    assert dict(post.sizes) == {"chain": 4, "draw": 100, "scan": 4}
    assert list(post["scan"].values) == list(maps.scan)
    assert post["D"].attrs["units"] == "nm^2/s" and post["sigma"].attrs["units"] == "J/m^2"
    np.testing.assert_allclose(data.constant_data["temperature"].values, maps.temperature)
    np.testing.assert_allclose(data.constant_data["q"].values, maps.q)
    np.testing.assert_allclose(data.constant_data["sigma_true"].values, maps.theta[:, 1])
    assert set(data.observed_data.data_vars) == {"phi", "phi_corrected"}
    p = data.constant_data["misspecification_p"]
    assert p.attrs["alpha"] == 0.05 and ((p >= 0) & (p <= 1)).all()
    assert "misspec p" in printed
    prior = Prior()
    for k, name in enumerate(("D", "sigma", "c")):
        values = post[name].values
        assert values.min() >= prior.low[k] and values.max() <= prior.high[k]
    summary = az.summary(data)
    assert len(summary) == 12 and "r_hat" in summary
    meta = json.loads((work["model"] / "model.json").read_text())
    with h5py.File(out, "r") as f:
        assert f.attrs["model_hash"] and f.attrs["maps_hash"] and f.attrs["seed"] == "1"
    assert data.posterior.attrs["model_hash"] == str(h5py.File(out, "r").attrs["model_hash"])
    rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    assert [r["scan"] for r in rows] == list(maps.scan)
    assert {"D_mean", "D_sd", "D_q05", "D_q95", "sigma_q95", "c_mean"} <= set(rows[0])
    plots = work["root"] / "post-plots"
    assert (plots / "intervals.png").exists() and len(list(plots.glob("corner_*.png"))) == 4
    assert meta["weights_sha256"]["weights.pt"]


def test_infer_is_reproducible_and_refuses_to_overwrite(work, capsys):
    a, b = work["root"] / "a.nc", work["root"] / "b.nc"
    for path in (a, b):
        assert main(["infer", str(work["model"]), str(work["pseudo"]), "--out", str(path),
                     "--draws", "40", "--no-plots"]) == 0
    assert a.with_suffix(".csv").read_text() == b.with_suffix(".csv").read_text()
    err = run_error(capsys, ["infer", str(work["model"]), str(work["pseudo"]), "--out", str(a),
                             "--draws", "40"])
    assert "exists; pass --overwrite" in err


def test_python_api_in_sbi_idiom(work):
    from gbsbi.inference import load_posterior

    posterior = load_posterior(work["model"])
    maps = read_maps(work["pseudo"])
    x = posterior.observe(maps.C[0], temperature=maps.temperature[0])
    theta = posterior.sample((500,), x=x[0])
    assert theta.shape == (500, 3)
    log_prob = posterior.log_prob(theta[:10], x=x[0])
    assert log_prob.shape == (10,) and torch.isfinite(log_prob).all()
    outside = torch.tensor([[1e-4, 10.0, 0.2]], dtype=torch.float64)
    assert posterior.log_prob(outside, x=x[0])[0] == -torch.inf
    # log_prob in physical units is the unit-cube density times the Jacobian of u(theta); the
    # default model is an ensemble of 3, whose cube density is sbi's EnsemblePosterior's (the
    # mean of the members' renormalised densities). sbi estimates each member's mass inside
    # with 10,000 random draws, gbsbi with 1,024 fixed ones: at a mass of 0.5 or more the two
    # log densities differ by under 0.12 (4 sd), where a wrong weight or mass is off by log 3
    assert len(posterior.flows) == 3
    u = torch.as_tensor(posterior.prior.to_unit(theta[:3].numpy()))
    torch.manual_seed(5)
    expected = posterior.unit.log_prob(u.float(), x=x[0]).double() + \
        torch.as_tensor(posterior.prior.log_jacobian(theta[:3].numpy()))
    torch.testing.assert_close(posterior.log_prob(theta[:3], x=x[0]), expected, rtol=0,
                               atol=0.12)


def test_maps_on_another_frame_count_are_resampled_with_a_note(work, capsys):
    maps = read_maps(work["pseudo"])
    fine = np.repeat(np.repeat(maps.C, 2, axis=1), 2, axis=2)
    path = work["root"] / "fine.h5"
    from gbsbi.io.mapsfile import Maps

    write_maps(path, Maps(fine, np.arange(256) * 2000 / 256, maps.temperature, maps.q,
                          maps.scan))
    out = work["root"] / "fine.nc"
    capsys.readouterr()
    assert main(["infer", str(work["model"]), str(path), "--out", str(out), "--draws", "40",
                 "--no-plots"]) == 0
    assert "256 frames binned to the model's 128 frames" in capsys.readouterr().out


def _assert_nothing_written(root: Path, stem: str) -> None:
    assert not (root / f"{stem}.nc").exists() and not (root / f"{stem}.csv").exists()
    assert not (root / f"{stem}-plots").exists()


def test_maps_from_another_configuration_are_refused(work, capsys):
    other = _pseudo(work["root"] / "other.h5", ExperimentConfig(L=50.0))
    err = run_error(capsys, ["infer", str(work["model"]), str(other), "--out",
                             str(work["root"] / "bad.nc")])
    assert "L = 50.0" in err and "L = 100.0" in err
    _assert_nothing_written(work["root"], "bad")


@pytest.mark.parametrize(("change", "message"), [
    ("q", "q = 0.5 nm^-1, the model's q is 1 nm^-1"),
    ("window", "window of 1000 s"),
    ("nan", "has no finite off-diagonal entry"),
])
def test_maps_with_another_q_window_or_no_data_are_refused(work, capsys, change, message):
    from gbsbi.io.mapsfile import Maps

    maps = read_maps(work["pseudo"])
    C, t, q = maps.C.copy(), maps.t, maps.q.copy()
    if change == "q":
        q[2] = 0.5
    elif change == "window":
        t = t / 2
    else:
        C[1] = np.nan
    path = work["root"] / f"{change}.h5"
    write_maps(path, Maps(C, t, maps.temperature, q, maps.scan))
    err = run_error(capsys, ["infer", str(work["model"]), str(path), "--out",
                             str(work["root"] / "bad.nc")])
    assert message in err
    _assert_nothing_written(work["root"], "bad")


def _copy_model(work, name: str) -> Path:
    import shutil

    target = work["root"] / name
    shutil.copytree(work["model"], target)
    return target


def test_a_model_with_missing_or_changed_weights_is_refused(work, capsys):
    missing = _copy_model(work, "missing")
    (missing / "weights.pt").unlink()
    err = run_error(capsys, ["infer", str(missing), str(work["pseudo"]), "--out",
                             str(work["root"] / "bad.nc")])
    assert "weights.pt is missing" in err
    tampered = _copy_model(work, "tampered")
    with open(tampered / "weights.pt", "ab") as f:
        f.write(b"\0")
    err = run_error(capsys, ["infer", str(tampered), str(work["pseudo"]), "--out",
                             str(work["root"] / "bad.nc")])
    assert "SHA-256 differs" in err
    _assert_nothing_written(work["root"], "bad")


class Payload:
    """A pickled object: what weights_only=True must never load."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_weights_file_with_a_pickled_object_is_refused(work, capsys):
    import hashlib

    model = _copy_model(work, "pickled")
    torch.save({"net": Payload()}, model / "weights.pt")
    meta = json.loads((model / "model.json").read_text())
    meta["weights_sha256"]["weights.pt"] = hashlib.sha256(
        (model / "weights.pt").read_bytes()).hexdigest()
    (model / "model.json").write_text(json.dumps(meta))
    err = run_error(capsys, ["infer", str(model), str(work["pseudo"]), "--out",
                             str(work["root"] / "bad.nc")])
    assert "not a plain state_dict of tensors, refused" in err
    assert "pwned" not in capsys.readouterr().out


def test_train_refuses_bad_input_before_writing(work, capsys):
    root = work["root"]
    err = run_error(capsys, ["train", str(work["pseudo"]), "--out", str(root / "m1")])
    assert "not a simulation bank" in err
    err = run_error(capsys, ["train", str(work["bank"]), "--out", str(root / "m2"),
                             "--coral", "1"])
    assert "need --experimental" in err
    err = run_error(capsys, ["train", str(work["bank"]), "--out", str(work["model"])])
    assert "already holds a model" in err
    other = _pseudo(root / "other2.h5", ExperimentConfig(h0=5.0))
    err = run_error(capsys, ["train", str(work["bank"]), "--out", str(root / "m3"),
                             "--experimental", str(other)])
    assert "h0 = 5.0" in err
    err = run_error(capsys, ["train", str(work["bank"]), "--out", str(root / "m4"),
                             "--coral", "nan"])
    assert "--coral" in err and "nan" in err
    assert not any((root / m).exists() for m in ("m1", "m2", "m3", "m4"))


def test_adapted_training_records_the_experimental_maps(work):
    out = work["root"] / "adapted"
    assert main(["train", str(work["bank"]), "--out", str(out), "--epochs", "1",
                 "--experimental", str(work["pseudo"])]) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["experimental"]["n"] == 4 and len(meta["experimental"]["content_hash"]) == 64
    assert meta["training"]["coral_weight"] > 0 and meta["training"]["phi_weight"] > 0
    history = json.loads((out / "history.json").read_text())
    assert history[0]["coral"] > 0 and history[0]["phi"] > 0


def test_ctrl_c_keeps_a_checkpoint_and_resume_checks_the_settings(work, capsys):
    """A real interruption: SIGINT to a training process once its first checkpoint exists."""
    out = work["root"] / "interrupted"
    argv = ["train", str(work["bank"]), "--out", str(out), "--epochs", "60", "--patience", "2"]
    process = subprocess.Popen([sys.executable, "-m", "gbsbi", *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120  # the default ensemble: a checkpoint per member
    while not list(out.glob("checkpoint*.pt")) and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume" in stdout + stderr
    assert list(out.glob("checkpoint*.pt")) and not (out / "model.json").exists()
    err = run_error(capsys, [*argv, "--learning-rate", "0.01", "--resume"])
    assert "training.learning_rate = 0.001" in err
    err = run_error(capsys, argv)
    assert "interrupted training run; continue it with --resume" in err
    assert main([*argv, "--resume", "--epochs", "3"]) == 0  # the stopping rule may change
    assert (out / "model.json").exists() and not (out / "checkpoint.pt").exists()


def test_observe_runs_the_checks_of_the_command_line(work):
    """A 300-frame map is resampled with a note, a temperature outside the training range is
    warned about, another q refused: in Python as in `gbsbi infer`."""
    from gbsbi.errors import GbsbiError
    from gbsbi.inference import load_posterior

    posterior = load_posterior(work["model"])
    said: list[str] = []
    C = np.ones((300, 300)) + 0.01 * np.random.default_rng(0).standard_normal((300, 300))
    x = posterior.observe((C + C.T) / 2, temperature=350.0, warn=said.append)
    assert x.shape[0] == 1 and any("300 frames" in line for line in said)
    said.clear()
    maps = read_maps(work["pseudo"])
    posterior.observe(maps.C[0], temperature=5000.0, warn=said.append)
    assert any("5000 K lies outside" in line for line in said)
    with pytest.warns(UserWarning, match="outside the model's training range"):
        posterior.observe(maps.C[0], temperature=5000.0)
    with pytest.raises(GbsbiError, match="q = 2"):
        posterior.observe(maps.C[0], temperature=350.0, q=2.0)


def test_a_map_far_outside_the_model_gets_no_draws_and_is_flagged(work, capsys):
    """A flat map at C = 51 (no simulation is within an order of magnitude) leaves this
    model's flow with none of 20,000 draws inside the prior: rejection would never end.
    `gbsbi infer` finishes, gives that scan NaN draws and flags it (outside_prior, p = 0), and
    the scan beside it gets exactly the draws it gets alone; `sample` in Python says why it
    cannot draw; `draw_in_cube` gives up after draws / MIN_MASS proposals."""
    from gbsbi.errors import GbsbiError
    from gbsbi.inference import load_posterior
    from gbsbi.inference.npe.predict import draw_in_cube, outside_prior
    from gbsbi.io.mapsfile import Maps

    root = work["root"]
    maps = read_maps(work["pseudo"])
    rng = np.random.default_rng(0)
    flat = 51 + 0.05 * rng.standard_normal((128, 128))
    C = np.stack([maps.C[0], ((flat + flat.T) / 2).astype(np.float32)])
    write_maps(root / "far.h5", Maps(C, maps.t, maps.temperature[:2], maps.q[:2],
                                     scan=np.array(["pseudo", "far"])))
    write_maps(root / "near.h5", Maps(C[:1], maps.t, maps.temperature[:1], maps.q[:1],
                                      scan=np.array(["pseudo"])))
    posterior = load_posterior(work["model"])
    x = posterior.observe(C, temperature=maps.temperature[:2])
    assert outside_prior(posterior.model.network, x).tolist() == [False, True]
    capsys.readouterr()
    for name in ("far", "near"):
        assert main(["infer", str(work["model"]), str(root / f"{name}.h5"), "--out",
                     str(root / f"{name}.nc"), "--draws", "200", "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert "'far' is far outside the model" in err and "'pseudo' is far" not in err
    import arviz as az

    far = az.from_netcdf(root / "far.nc")
    near = az.from_netcdf(root / "near.nc")
    D = far.posterior["D"].values  # (chain, draw, scan)
    assert np.isnan(D[..., 1]).all() and np.isfinite(D[..., 0]).all()
    np.testing.assert_array_equal(D[..., 0], near.posterior["D"].values[..., 0])
    assert far.constant_data["misspecification_p"].values[1] == 0.0
    assert far.constant_data["misspecification_p_outside_prior"].values[1] == 0.0
    with pytest.raises(GbsbiError, match="far outside the model"):
        posterior.sample((10,), x=x[1])
    u, log_q = draw_in_cube(posterior.model.network, x, 50)
    assert torch.isnan(u[:, 1]).all() and torch.isfinite(u[:, 0]).all()
    # `gbsbi check` leaves such a simulation out of every figure and counts it (the default
    # model is an ensemble: each member's draws are NaN for it)
    from gbsbi.validation.check import run_check

    truth = np.full((2, 3), 0.5)
    checked = run_check(posterior.model, x.numpy(), truth, draws=40, diagnostics=False)
    with np.errstate(divide="ignore"):  # R^2 of the one simulation kept has no spread
        numbers = checked.to_dict()
    assert numbers["n"] == 1 and numbers["left_out_outside_prior"] == 1
    assert np.isfinite(checked.hpd).all() and np.isfinite(checked.median).all()
    with pytest.raises(GbsbiError, match="nothing to check"):
        run_check(posterior.model, x.numpy()[1:], truth[1:], draws=40, diagnostics=False)
    # one input, one answer: its share inside is the same alone as among others
    from gbsbi.inference.npe.predict import mass_inside

    both = mass_inside(posterior.model.network, x, 256)
    alone = torch.cat([mass_inside(posterior.model.network, x[k:k + 1], 256) for k in (0, 1)])
    torch.testing.assert_close(both, alone, rtol=0, atol=0)
    # without a misspecification reference nothing is flagged, but the user is still told
    bare = _copy_model(work, "bare")
    for name in ("misspecification.json", "misspecification.pt"):
        (bare / name).unlink()
    capsys.readouterr()
    assert main(["infer", str(bare), str(root / "far.h5"), "--out", str(root / "bare.nc"),
                 "--draws", "40", "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert "no misspecification reference" in err and "'far' is far outside the model" in err
