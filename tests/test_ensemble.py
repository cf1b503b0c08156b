"""An ensemble of posterior estimators (docs/inference.md#ensemble): real trainings on a small
bank, real sbi posteriors."""

import json
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gbsbi.bank import BankSpec, simulate_bank  # noqa: E402
from gbsbi.cli import main  # noqa: E402
from gbsbi.errors import GbsbiError  # noqa: E402
from gbsbi.inference.config import TrainConfig  # noqa: E402
from gbsbi.inference.data import bank_inputs  # noqa: E402
from gbsbi.inference.flow import log_prob_given, parts  # noqa: E402
from gbsbi.inference.model import load_model  # noqa: E402
from gbsbi.inference.npe import train as npe_train  # noqa: E402
from gbsbi.inference.npe.config import NpeConfig  # noqa: E402
from gbsbi.inference.npe.likelihood import scan_log_likelihood  # noqa: E402
from gbsbi.inference.npe.network import members  # noqa: E402
from gbsbi.inference.npe.predict import (  # noqa: E402
    GbPosterior,
    draws_with_density,
    member_log_mass,
    posterior_draws,
)
from gbsbi.inference.pipeline import train_model  # noqa: E402
from simulators.config import STATIONARY, ExperimentConfig, Prior  # noqa: E402

TRAINING = TrainConfig(epochs=3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    bank = root / "bank.h5"
    # the stationary polycrystal: these tests are about mixing members, not about the prior
    simulate_bank(bank, BankSpec(ExperimentConfig(), Prior(), 1200, 3, measurement="fast",
                                 sample=STATIONARY))
    quiet = {"show_progress": False, "cache": None, "log": lambda line: None}
    # one thread, as each member of an ensemble trains (the pair: one worker per core)
    single = train_model(bank, root / "single", TRAINING, NpeConfig(), threads=1, **quiet)
    pair = train_model(bank, root / "pair", TRAINING, NpeConfig(members=2), **quiet)
    return {"root": root, "bank": bank, "single": single, "pair": pair, "quiet": quiet}


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())


def test_member_zero_is_the_single_model_bit_for_bit(trained):
    pair = load_model(trained["root"] / "pair")
    single = load_model(trained["root"] / "single")
    assert pair.spec.estimator.members == 2 and single.spec.estimator.members == 1
    assert json.loads((trained["root"] / "pair" / "model.json").read_text())["members"] == 2
    assert "members" not in json.loads((trained["root"] / "single" / "model.json").read_text())
    first, second = members(pair)
    assert same_weights(first, single.network)
    assert not same_weights(second, first)  # its own initialisation and batch order
    assert not [p.name for p in (trained["root"] / "pair").iterdir()
                if p.name.startswith(("member-", "checkpoint"))]


def test_members_trained_at_once_or_in_turn_are_the_same(trained):
    """The pair trains in two worker processes on this machine's two cores; with --threads 1
    it trains in this process, one member after the other: the same bytes."""
    import os

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: the pair trained in turn as well")
    in_turn = train_model(trained["bank"], trained["root"] / "in_turn", TRAINING,
                          NpeConfig(members=2), threads=1, **trained["quiet"])
    for a, b in zip(members(in_turn), members(load_model(trained["root"] / "pair")),
                    strict=True):
        assert same_weights(a, b)


def test_the_posterior_is_the_equal_mixture_of_the_members(trained):
    model = load_model(trained["root"] / "pair")
    x = bank_inputs(trained["bank"], model.spec.inputs).x[:3]
    posterior = GbPosterior(model)
    theta = posterior_draws(model, x, 50, 0)[:, 0]
    u = torch.as_tensor(model.spec.prior.to_unit(theta), dtype=torch.float32)
    with torch.no_grad():
        by_member = torch.stack([
            log_prob_given(flow, u,
                           parts(flow).embedding(torch.as_tensor(x[:1])).repeat(len(u), 1))
            for flow in members(model)]).double()
    # each member renormalised to the cube by its mass inside, as its draws are; the masses
    # from 20,000 draws of each flow (a Monte Carlo check of the fixed-draw estimate)
    with torch.no_grad():
        mass = torch.stack([((flow.sample((20_000,), condition=torch.as_tensor(x[:1]))
                              .reshape(-1, 3) - 0.5).abs() <= 0.5).all(-1).double().mean()
                            for flow in members(model)])
    log_mass = member_log_mass(members(model), torch.as_tensor(x[:1]))[:, 0].double()
    # 1,024 fixed draws: sd of the estimate <= 0.016; 4 sd of it plus that of 20,000 draws
    torch.testing.assert_close(log_mass.exp(), mass, rtol=0, atol=0.07)
    mixture = torch.logsumexp(by_member - log_mass[:, None], 0) - np.log(2)
    expected = mixture + torch.as_tensor(model.spec.prior.log_jacobian(theta))
    for norm in (True, False):  # an ensemble's density is that of its draws either way
        got = posterior.log_prob(torch.as_tensor(theta), torch.as_tensor(x[0]),
                                 norm_posterior=norm)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
    # the group posteriors' likelihood is the same mixture
    loglik = scan_log_likelihood(model, x[:1])(u.double().numpy()[:, None, :])[:, 0]
    np.testing.assert_allclose(loglik, mixture.numpy(), rtol=1e-5, atol=1e-4)
    # and so is the density that `gbsbi check` reads at the truth
    truth = model.spec.prior.to_unit(theta[:1])
    drawn = draws_with_density(model, x[:1], truth, 20, 0)
    np.testing.assert_allclose(drawn["log_q_truth"][0], expected[0].item()
                               - model.spec.prior.log_jacobian(theta[:1])[0], rtol=1e-5,
                               atol=1e-4)


def test_the_group_likelihood_of_the_first_member_is_the_single_model(trained):
    """`gbsbi group --members 1` evaluates member 0 alone: the single model's likelihood to the
    bit (member 0 is the single model's weights); more members than the model has is a
    one-line error."""
    pair = load_model(trained["root"] / "pair")
    single = load_model(trained["root"] / "single")
    x = bank_inputs(trained["bank"], pair.spec.inputs).x[:4]
    u = np.random.default_rng(0).random((16, 4, 3))
    first = scan_log_likelihood(pair, x, 1)(u)
    np.testing.assert_array_equal(first, scan_log_likelihood(single, x)(u))
    assert np.all(np.isfinite(first))
    # the pair's mixture is another density
    assert not np.allclose(scan_log_likelihood(pair, x, 2)(u), first, atol=1e-3)
    np.testing.assert_array_equal(scan_log_likelihood(pair, x, 2)(u),
                                  scan_log_likelihood(pair, x)(u))
    for bad in (3, -1):
        with pytest.raises(GbsbiError, match=f"--members {bad}: must be 0 .* to 2"):
            scan_log_likelihood(pair, x, bad)


def test_the_members_in_one_pass_are_the_members_one_by_one(trained):
    """The group likelihood evaluates an ensemble's NSF members in one pass
    (gbsbi.inference.npe.fused): each member's log q as its own flow gives it, at many
    parameter vectors of several scans. float32 throughout; the pass adds the features' terms
    of the first layer apart and multiplies in another order, so the values agree to float32
    rounding of numbers of order 10, not to the bit. A flow of another architecture (MAF) is
    not fused: the likelihood goes member by member."""
    from gbsbi.inference.config import FlowConfig
    from gbsbi.inference.flow import build_flow
    from gbsbi.inference.npe.fused import FusedEnsemble, _spline

    model = load_model(trained["root"] / "pair")
    flows = [flow.eval() for flow in members(model)]
    x = torch.as_tensor(bank_inputs(trained["bank"], model.spec.inputs).x[:5])
    u = torch.as_tensor(np.random.default_rng(1).random((7, 5, 3)), dtype=torch.float32)
    with torch.no_grad():
        features = torch.stack([parts(flow).embedding(x) for flow in flows])
        fused = FusedEnsemble.of(flows, features)
        assert fused is not None
        expected = torch.stack([
            log_prob_given(flow, u.reshape(-1, 3), f.repeat(7, 1)).view(7, 5)
            for flow, f in zip(flows, features, strict=True)])
        got = fused(u)
        assert got.shape == (2, 7, 5)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
        # one member alone, as `--members 1` and a single model evaluate it
        torch.testing.assert_close(FusedEnsemble.of(flows[:1], features[:1])(u), expected[:1],
                                   rtol=1e-5, atol=1e-4)
        maf = build_flow(parts(flows[0]).embedding, FlowConfig(model="maf"), u.reshape(-1, 3),
                         x[:1].expand(35, -1))
        assert FusedEnsemble.of([maf.eval()], features[:1]) is None
        # the spline with its inputs outside [-B, B] set aside and put back, not masked:
        # nflows' own values inside and outside (the tails: the identity, log|det| 0). The same
        # arithmetic on another layout of the inputs: equal to a few float32 ulp (1-2 seen),
        # hence rtol 1e-6 on values of order 1-10, not to the bit
        layer = parts(flows[0]).transform._transforms[1]
        generator = torch.Generator().manual_seed(2)
        inputs = 2 * layer.tail_bound * torch.randn(384, 2, generator=generator)
        params = torch.randn(384, 2 * (3 * layer.num_bins - 1), generator=generator)
        outside = inputs.abs() > layer.tail_bound
        assert outside.any() and (~outside).any()
        got = _spline(layer, inputs, params.clone())
        expected = layer._coupling_transform_forward(inputs, params.clone())
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
        assert torch.equal(got[0][outside], inputs[outside])
        both = outside.all(-1)  # rows wholly in the tails: log|det| 0
        assert both.any() and torch.equal(got[1][both], torch.zeros(int(both.sum())))
        inputs[0, 0] = float("nan")  # a NaN stays a NaN (nflows: NaN), not an error
        assert torch.isnan(_spline(layer, inputs, params.clone())[0][0, 0])
    # member by member (the reference, and the way of any other architecture): the same values
    x = x.numpy()
    np.testing.assert_allclose(scan_log_likelihood(model, x, one_pass=False)(u.double().numpy()),
                               scan_log_likelihood(model, x)(u.double().numpy()), rtol=1e-5,
                               atol=1e-4)


def test_a_group_of_the_first_member_is_the_single_models_group(trained):
    """A group posterior with members=1 samples the single model's product: the same draws
    at the same seed, bit for bit; with both members, other draws; the setting is stored."""
    import h5py

    from gbsbi.group import group_posterior
    from gbsbi.group.config import GroupSettings
    from gbsbi.inference import load_posterior

    with h5py.File(trained["bank"], "r") as f:
        C, temperature = f["C"][:3].astype(np.float64), f["temperature"][:3]

    def draws(name: str, members: int):  # noqa: ANN202
        data = group_posterior(load_posterior(trained["root"] / name), C, temperature,
                               settings=GroupSettings(draws=200, members=members))
        assert json.loads(data.posterior.attrs["settings"])["members"] == members
        return data.posterior["D_scan"].values

    first = draws("pair", 1)
    np.testing.assert_array_equal(first, draws("single", 0))
    assert not np.array_equal(first, draws("pair", 0))


def alone(model, flow):
    """One member of an ensemble as a model of one."""
    spec = replace(model.spec, estimator=replace(model.spec.estimator, members=1))
    return replace(model, spec=spec, network=flow, parts={})


def test_draws_come_from_every_member_in_any_order(trained):
    model = load_model(trained["root"] / "pair")
    x = bank_inputs(trained["bank"], model.spec.inputs).x[:8]
    n = 20_000
    mixed = model.spec.prior.to_unit(posterior_draws(model, x, n, 1))  # (n, 8, 3)
    one = [model.spec.prior.to_unit(posterior_draws(alone(model, flow), x, n, 2))
           for flow in members(model)]
    means, variances = [d.mean(0) for d in one], [d.var(0) for d in one]
    # the members must differ for the test to see anything: somewhere among 8 scans x 3
    # parameters their means differ by more than 10 Monte Carlo standard errors
    se = np.sqrt((variances[0] + variances[1]) / n)
    k = np.unravel_index(np.argmax(np.abs(means[0] - means[1]) / se), se.shape)
    assert abs(means[0] - means[1])[k] > 10 * se[k]
    # the mixture's mean is the members' average, within 5 standard errors of the difference
    # (24 comparisons: a false alarm has probability ~1e-5)
    target = (means[0] + means[1]) / 2
    tolerance = 5 * np.sqrt(mixed.var(0) / n + (variances[0] + variances[1]) / (4 * n))
    assert (np.abs(mixed.mean(0) - target) < tolerance).all()
    # shuffled: the first quarter of the draws (the predictive tests replicate the first 40)
    # lies nearer the mixture's mean than member 0's where the members differ most (unshuffled
    # it is member 0's draws; the two means are over 5 standard errors of n draws apart, 2.5
    # of the quarter's mean, so a shuffled quarter strays past the midpoint with probability
    # under 0.11 at the bound, less where they differ more; the seeds are fixed)
    head = mixed[: n // 4].mean(0)[k]
    assert abs(head - target[k]) < abs(head - means[0][k])


def test_an_interrupted_ensemble_resumes_bit_for_bit(trained, monkeypatch):
    class Stop(KeyboardInterrupt):
        pass

    real = npe_train.train

    def stop_in_member_two(*args, **kwargs):
        if kwargs.get("member") == 1:
            def progress(done, record):
                if done > 1.5:  # second epoch of member 2: its first epoch is checkpointed
                    raise Stop
            kwargs["progress"] = progress
        return real(*args, **kwargs)

    out = trained["root"] / "resumed"
    monkeypatch.setattr(npe_train, "train", stop_in_member_two)
    with pytest.raises(Stop):  # in turn, in this process (--threads 1), to be interrupted
        train_model(trained["bank"], out, TRAINING, NpeConfig(members=2), threads=1,
                    **trained["quiet"])
    assert (out / "member-0.pt").exists() and (out / "checkpoint-1.pt").exists()
    assert not (out / "member-1.pt").exists()
    monkeypatch.setattr(npe_train, "train", real)
    # a run of other settings is refused, however far it got
    with pytest.raises(GbsbiError, match="learning_rate"):
        train_model(trained["bank"], out, TrainConfig(epochs=3, learning_rate=0.01),
                    NpeConfig(members=2), resume=True, **trained["quiet"])
    resumed = train_model(trained["bank"], out, TRAINING, NpeConfig(members=2), resume=True,
                          **trained["quiet"])
    pair = load_model(trained["root"] / "pair")
    for a, b in zip(members(resumed), members(pair), strict=True):
        assert same_weights(a, b)
    assert not list(out.glob("member-*")) and not list(out.glob("checkpoint*"))


def test_a_missing_member_file_is_refused(trained, tmp_path):
    import shutil

    copy = tmp_path / "pair"
    shutil.copytree(trained["root"] / "pair", copy)
    meta = json.loads((copy / "model.json").read_text())
    del meta["weights_sha256"]["members/1.pt"]
    (copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(GbsbiError, match="records no weights file members/1.pt"):
        load_model(copy)
    meta["weights_sha256"]["members/1.pt"] = meta["weights_sha256"]["members/5.pt"] = "0"
    (copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(GbsbiError, match="has no part 'members/5.pt'"):
        load_model(copy)


@pytest.mark.parametrize("argv, message", [
    (["--members", "0"], "--members"),
    (["--members", "17"], "at most 16"),
    (["--members", "2", "--estimator", "point"], "posterior estimator only"),
])
def test_bad_members_are_one_line_errors(trained, capsys, argv, message):
    code = main(["train", str(trained["bank"]), "--out", str(trained["root"] / "bad"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err and "Traceback" not in err
