"""The training loop: it learns, it is reproducible, an interrupted run resumes to the same
weights, and a resume with other settings is refused."""

import pytest

torch = pytest.importorskip("torch")
from gbsbi.errors import GbsbiError  # noqa: E402
from gbsbi.inference.config import FlowConfig, TrainConfig  # noqa: E402
from gbsbi.inference.flow import build_flow  # noqa: E402
from gbsbi.inference.loop import TrainingSet  # noqa: E402
from gbsbi.inference.npe.train import train  # noqa: E402


def toy(n: int = 600, seed: int = 0) -> TrainingSet:
    """u uniform in the cube, x = u + 0.05 noise: a posterior the flow can learn in seconds."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 3, generator=g)
    return TrainingSet(u + 0.05 * torch.randn(n, 3, generator=g), u)


def flow_for(data: TrainingSet) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_flow(torch.nn.Identity(), FlowConfig(transforms=2, hidden=16), data.u, data.x)


def test_training_lowers_the_validation_nll_and_keeps_the_best_epoch():
    data = toy()
    flow = flow_for(data)
    history = train(flow, data, TrainConfig(epochs=8, batch_size=64))
    assert len(history) == 8
    assert history[-1]["val_nll"] < history[0]["val_nll"] - 0.3
    assert {"loss", "nll", "val_nll", "maps_per_s", "seconds"} <= set(history[0])
    best = min(r["val_nll"] for r in history)
    with torch.no_grad():
        from gbsbi.inference.loop import split

        _, val = split(len(data.x), 0.1, 0)
        nll = -flow.log_prob(data.u[val][None], data.x[val])[0].mean().item()
    assert nll == pytest.approx(best, abs=1e-4)


def test_training_is_reproducible_from_the_seed():
    data = toy()
    runs = []
    for _ in range(2):
        flow = flow_for(data)
        train(flow, data, TrainConfig(epochs=2, batch_size=64, seed=3))
        runs.append(flow.state_dict())
    for key in runs[0]:
        torch.testing.assert_close(runs[0][key], runs[1][key], rtol=0, atol=0)


def test_early_stopping_stops_after_patience():
    data = toy(200)
    history = train(flow_for(data), data,
                    TrainConfig(epochs=200, batch_size=64, learning_rate=1e-9, patience=2))
    assert len(history) < 200


class _Stop(Exception):
    pass


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    data = toy()
    config = TrainConfig(epochs=4, batch_size=64, seed=1)
    settings = {"bank": "abc"}
    straight = flow_for(data)
    train(straight, data, config, checkpoint=tmp_path / "a.pt", settings=settings)

    def stop_in_third_epoch(fraction: float, last: dict) -> None:
        if last.get("epoch") == 2 and fraction > 0.5:
            raise _Stop

    interrupted = flow_for(data)
    with pytest.raises(_Stop):
        train(interrupted, data, config, checkpoint=tmp_path / "b.pt", settings=settings,
              progress=stop_in_third_epoch)
    resumed = flow_for(data)
    history = train(resumed, data, config, checkpoint=tmp_path / "b.pt", settings=settings,
                    resume=True)
    assert len(history) == 4
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0)


def test_resume_with_other_settings_is_refused(tmp_path):
    data = toy(200)
    train(flow_for(data), data, TrainConfig(epochs=1, batch_size=64),
          checkpoint=tmp_path / "c.pt", settings={"bank": "abc"})
    with pytest.raises(GbsbiError, match="learning_rate|training"):
        train(flow_for(data), data, TrainConfig(epochs=1, batch_size=64, learning_rate=0.1),
              checkpoint=tmp_path / "c.pt", settings={"bank": "abc"}, resume=True)
    with pytest.raises(GbsbiError, match="bank = 'abc'"):
        train(flow_for(data), data, TrainConfig(epochs=1, batch_size=64),
              checkpoint=tmp_path / "c.pt", settings={"bank": "xyz"}, resume=True)


def test_bad_training_settings_are_refused():
    for bad in ({"epochs": 0}, {"learning_rate": float("nan")}, {"coral_weight": -1.0},
                {"phi_weight": float("inf")}, {"validation_fraction": 1.0}):
        with pytest.raises(GbsbiError):
            TrainConfig(**bad)
