"""The point estimator's training: it learns, it is reproducible, an interrupted run resumes to
the same weights (across the stage boundary), adaptation aligns the features, the Phi term is
what it says, and per-group fine-tuning moves only the selected layers of a copy of the head."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from gbsbi.errors import GbsbiError  # noqa: E402
from gbsbi.inference.config import EmbeddingConfig, TrainConfig  # noqa: E402
from gbsbi.inference.domain import coral, phi_residual  # noqa: E402
from gbsbi.inference.inputs import SCALARS, InputLayout  # noqa: E402
from gbsbi.inference.loop import TrainingSet  # noqa: E402
from gbsbi.inference.point.config import FineTuneConfig, HeadConfig, PointConfig  # noqa: E402
from gbsbi.inference.point.network import build_regressor, predict  # noqa: E402
from gbsbi.inference.point.train import fine_tune  # noqa: E402
from gbsbi.inference.point.train import fit_stages as fit  # noqa: E402
from gbsbi.inference.surrogate import PhiSurrogate  # noqa: E402

BINS = 16
LAYOUT = InputLayout(BINS)
SMALL = EmbeddingConfig(channels=(4, 8), hidden=16, features=8)


def toy(n: int = 400, seed: int = 0, shift: float = 0.0) -> TrainingSet:
    """Random inputs whose first three lag bins are 4 u - 2: u is learnable from x. ``shift``
    moves every map entry (a domain gap the labels do not see)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, LAYOUT.size, generator=g)
    x[:, LAYOUT.valid] = 1.0
    x[:, LAYOUT.map] += shift
    u = torch.rand(n, 3, generator=g)
    x[:, LAYOUT.lags.start : LAYOUT.lags.start + 3] = 4 * u - 2
    x[:, LAYOUT.scalars.start + SCALARS.index("noise_only")] = 0.0
    return TrainingSet(x, u)


def regressor_for(data: TrainingSet):
    torch.manual_seed(0)
    regressor = build_regressor(BINS, SMALL, HeadConfig((16, 16)))
    regressor.embedding.set_standardisation(data.x.mean(0), data.x.std(0))
    return regressor


def constant_surrogate(phi: float = 0.3) -> PhiSurrogate:
    """A surrogate that says mu_s = phi everywhere."""
    surrogate = PhiSurrogate(8)
    with torch.no_grad():
        surrogate.net[-1].weight.zero_()
        surrogate.net[-1].bias.copy_(torch.tensor([np.log(phi / (1 - phi)), 0.0]))
    return surrogate.eval().requires_grad_(False)


def fitted_surrogate() -> PhiSurrogate:
    """A surrogate whose mu_s depends on u (random weights), so the Phi term has gradients."""
    torch.manual_seed(1)
    return PhiSurrogate(8).eval().requires_grad_(False)


def test_vanilla_training_lowers_the_validation_mse_and_keeps_the_best_epoch():
    data = toy()
    regressor = regressor_for(data)
    history = fit(regressor, data, [TrainConfig(epochs=10, batch_size=16, learning_rate=1e-2)])
    assert len(history) == 10 and {r["stage"] for r in history} == {0}
    # u is uniform: predicting 0.5 everywhere gives MSE 1/12 = 0.083; learnt (0.004 with
    # this seed), below a quarter of it
    assert history[0]["val_mse"] > 0.05 and min(r["val_mse"] for r in history) < 0.02
    from gbsbi.inference.loop import split

    _, val = split(len(data.x), 0.1, 0)
    mse = (predict(regressor, data.x[val]) - data.u[val]).square().mean().item()
    assert mse == pytest.approx(min(r["val_loss"] for r in history), rel=1e-4)


def test_training_is_reproducible_from_the_seed():
    data, target = toy(200), toy(40, seed=1, shift=0.5).x
    stages = [TrainConfig(epochs=2, batch_size=32, seed=4),
              TrainConfig(epochs=1, batch_size=32, seed=4, coral_weight=1.0, phi_weight=1.0)]
    runs = []
    for _ in range(2):
        regressor = regressor_for(data)
        fit(regressor, data, stages, experimental=target, surrogate=fitted_surrogate())
        runs.append(regressor.state_dict())
    for key in runs[0]:
        torch.testing.assert_close(runs[0][key], runs[1][key], rtol=0, atol=0)


class _Stop(Exception):
    pass


def test_an_interrupted_run_resumes_to_the_same_weights_across_stages(tmp_path):
    data, target = toy(200), toy(40, seed=1, shift=0.5).x
    stages = [TrainConfig(epochs=2, batch_size=32, seed=1),
              TrainConfig(epochs=2, batch_size=32, seed=1, coral_weight=1.0, phi_weight=1.0,
                          learning_rate=1e-4)]
    settings = {"bank": "abc"}
    straight = regressor_for(data)
    fit(straight, data, stages, experimental=target, surrogate=fitted_surrogate(),
        checkpoint=tmp_path / "a.pt", settings=settings)

    def stop_in_the_second_stage(done: float, last: dict) -> None:
        if last.get("stage") == 1 and done > 3.5:
            raise _Stop

    interrupted = regressor_for(data)
    with pytest.raises(_Stop):
        fit(interrupted, data, stages, experimental=target, surrogate=fitted_surrogate(),
            checkpoint=tmp_path / "b.pt", settings=settings, progress=stop_in_the_second_stage)
    resumed = regressor_for(data)
    history = fit(resumed, data, stages, experimental=target, surrogate=fitted_surrogate(),
                  checkpoint=tmp_path / "b.pt", settings=settings, resume=True)
    assert [(r["stage"], r["epoch"]) for r in history] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0)
    with pytest.raises(GbsbiError, match="stages"):
        other = [stages[0], TrainConfig(epochs=2, batch_size=32, seed=1, coral_weight=2.0,
                                        phi_weight=1.0, learning_rate=1e-4)]
        fit(regressor_for(data), data, other, experimental=target, surrogate=fitted_surrogate(),
            checkpoint=tmp_path / "b.pt", settings=settings, resume=True)


def test_adaptation_aligns_the_features_of_a_shifted_domain():
    """CORAL between held-out simulations and shifted maps falls under adaptation; fixed
    seeds, and a factor of 2 where the run gives more than 10 (the shift is large)."""
    data, target = toy(400), toy(64, seed=1, shift=1.5).x
    held = toy(200, seed=2).x
    vanilla = regressor_for(data)
    fit(vanilla, data, [TrainConfig(epochs=4, batch_size=32, learning_rate=3e-3)])
    with torch.no_grad():
        before = coral(vanilla.embedding(held), vanilla.embedding(target)).item()
    fit(vanilla, data, [TrainConfig(epochs=4, batch_size=32, learning_rate=1e-3,
                                    coral_weight=10.0)], experimental=target)
    with torch.no_grad():
        after = coral(vanilla.embedding(held), vanilla.embedding(target)).item()
    assert after < before / 2, (before, after)


def test_phi_residual_is_the_squared_error_of_the_surrogate_and_skips_noise_only_maps():
    x = toy(6).x
    x[:, LAYOUT.scalars.start + SCALARS.index("phi_corrected")] = 0.5
    u_hat = torch.rand(6, 3)
    assert phi_residual(u_hat, x, LAYOUT, constant_surrogate(0.3)).item() == \
        pytest.approx(0.04, rel=1e-5)
    x[:3, LAYOUT.scalars.start + SCALARS.index("phi_corrected")] = 0.3
    x[3:, LAYOUT.scalars.start + SCALARS.index("noise_only")] = 1.0  # their 0.5 is left out
    assert phi_residual(u_hat, x, LAYOUT, constant_surrogate(0.3)).item() == \
        pytest.approx(0.0, abs=1e-12)
    x[:, LAYOUT.scalars.start + SCALARS.index("noise_only")] = 1.0
    assert phi_residual(u_hat, x, LAYOUT, constant_surrogate(0.3)).item() == 0.0


@pytest.mark.parametrize("layers", [1, 2])
def test_fine_tuning_changes_only_the_selected_layers_of_a_copy(layers):
    data = toy(200)
    regressor = regressor_for(data)
    fit(regressor, data, [TrainConfig(epochs=1, batch_size=32)])
    before = {k: v.clone() for k, v in regressor.state_dict().items()}
    group = toy(8, seed=5, shift=0.5).x
    group[:, LAYOUT.scalars.start + SCALARS.index("phi_corrected")] = 0.9
    head, steps = fine_tune(regressor, group, FineTuneConfig(steps=20, learning_rate=1e-2,
                                                             layers=layers),
                            fitted_surrogate())
    for key, value in regressor.state_dict().items():  # the regressor is untouched
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    selected = set(head.last_layers(layers))
    original = regressor.head.state_dict()
    changed = {k for k, v in head.state_dict().items() if not torch.equal(v, original[k])}
    assert changed == selected
    assert len(steps) == 21 and steps[-1]["phi"] < steps[0]["phi"]
    assert not any(p.requires_grad for p in head.parameters())


def test_fine_tuning_a_group_with_no_defined_phi_leaves_its_head_as_it_was():
    data = toy(100)
    regressor = regressor_for(data)
    group = toy(4, seed=5).x
    group[:, LAYOUT.scalars.start + SCALARS.index("noise_only")] = 1.0
    head, steps = fine_tune(regressor, group, FineTuneConfig(steps=5), fitted_surrogate())
    assert len(steps) == 1 and steps[0]["phi"] == 0.0
    for key, value in head.state_dict().items():
        torch.testing.assert_close(value, regressor.head.state_dict()[key], rtol=0, atol=0)


def test_point_configuration_round_trips_and_refuses_what_cannot_work():
    adapted = TrainConfig(coral_weight=0.5, phi_weight=2.0, learning_rate=1e-4)
    config = PointConfig(HeadConfig((32,)), adapted, FineTuneConfig(steps=7, layers=2))
    assert PointConfig.from_dict(config.to_dict()) == config
    assert config.stages(TrainConfig()) == (TrainConfig(), adapted)
    with pytest.raises(GbsbiError, match="Phi term only"):
        PointConfig(fine_tune=FineTuneConfig())  # nothing to fine-tune with
    with pytest.raises(GbsbiError, match="Phi term only"):
        PointConfig(adaptation=TrainConfig(coral_weight=1.0), fine_tune=FineTuneConfig())
    with pytest.raises(GbsbiError, match="last 3 layers of a head with 2"):
        PointConfig(HeadConfig((32,)), adapted, FineTuneConfig(layers=3))
    with pytest.raises(GbsbiError, match="positive CORAL or Phi"):
        PointConfig(adaptation=TrainConfig())
    for bad in ({"steps": 0}, {"learning_rate": float("nan")}, {"layers": 0}):
        with pytest.raises(GbsbiError):
            FineTuneConfig(**bad)


def test_the_command_line_takes_its_point_defaults_from_the_configuration():
    """`gbsbi train --estimator point` with no setting flags gives the configuration
    dataclasses' defaults: the command line holds no defaults of its own."""
    from gbsbi.cli import build_parser, train
    from gbsbi.inference.point.config import Adaptation

    args = build_parser().parse_args(["train", "b.h5", "--out", "m", "--estimator", "point",
                                      "--experimental", "x.h5", "--fine-tune-groups"])
    vanilla, point = train.settings(args)
    assert vanilla == TrainConfig()
    assert point.adaptation == Adaptation().stage(TrainConfig())
    assert point.fine_tune == FineTuneConfig() and point.head == HeadConfig()
