"""Contract tests of every network of the posterior and the point estimators, CORAL and the
Phi term."""

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from gbsbi.inference.config import EmbeddingConfig, FlowConfig, TrainConfig  # noqa: E402
from gbsbi.inference.domain import coral  # noqa: E402
from gbsbi.inference.embedding import MapEmbedding  # noqa: E402
from gbsbi.inference.flow import build_flow, log_prob_given, parts, sample_given  # noqa: E402
from gbsbi.inference.inputs import SCALARS, InputLayout  # noqa: E402
from gbsbi.inference.npe.train import npe_losses  # noqa: E402
from gbsbi.inference.point.config import HeadConfig  # noqa: E402
from gbsbi.inference.point.network import MLPHead, build_regressor  # noqa: E402
from gbsbi.inference.surrogate import PhiSurrogate  # noqa: E402

BINS = 16
SIZE = InputLayout(BINS).size
SMALL = EmbeddingConfig(channels=(4, 8), hidden=16, features=8)


def _x(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, SIZE, generator=g)
    x[:, InputLayout(BINS).valid] = 1.0
    return x


def _flow() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_flow(MapEmbedding(BINS, SMALL), FlowConfig(transforms=2, hidden=16),
                      torch.rand(64, 3), _x(2))


def _embedding() -> MapEmbedding:
    torch.manual_seed(0)
    return MapEmbedding(BINS, SMALL)


def _surrogate() -> PhiSurrogate:
    torch.manual_seed(0)
    return PhiSurrogate(16)


def _head() -> MLPHead:
    torch.manual_seed(0)
    return MLPHead(SMALL.features, HeadConfig((16, 16)))


def _regressor() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_regressor(BINS, SMALL, HeadConfig((16, 16)))


def _outputs(name: str, module: torch.nn.Module) -> torch.Tensor:
    """A differentiable output of each network on fixed inputs."""
    x, u = _x(5, 1), torch.rand(5, 3, generator=torch.Generator().manual_seed(2))
    if name == "embedding":
        return module(x)
    if name == "surrogate":
        mu, sd = module(u, torch.linspace(-1, 1, 5))
        return torch.stack([mu, sd], -1)
    if name == "head":
        return module(torch.randn(5, SMALL.features, generator=torch.Generator().manual_seed(3)))
    if name == "regressor":
        return module(x)
    return module.log_prob(u[None], x)[0]


NETWORKS = {"embedding": _embedding, "surrogate": _surrogate, "flow": _flow, "head": _head,
            "regressor": _regressor}
SHAPES = {"embedding": (5, 8), "surrogate": (5, 2), "flow": (5,), "head": (5, 3),
          "regressor": (5, 3)}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_output_shapes(name):
    assert _outputs(name, NETWORKS[name]()).shape == SHAPES[name]


@pytest.mark.parametrize("name", list(NETWORKS))
def test_gradients_reach_every_parameter(name):
    module = NETWORKS[name]()
    _outputs(name, module).square().sum().backward()
    missing = [n for n, p in module.named_parameters() if p.grad is None or
               not torch.any(p.grad != 0)]
    assert not missing, missing


@pytest.mark.parametrize("name", list(NETWORKS))
def test_save_and_load_give_the_same_outputs(name):
    module = NETWORKS[name]()
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    torch.manual_seed(99)  # another initialisation, overwritten by the state
    other = NETWORKS[name]()
    for p in other.parameters():
        p.data.add_(1.0)
    other.load_state_dict(state)
    torch.testing.assert_close(_outputs(name, other), _outputs(name, module), rtol=0, atol=0)


def test_embedding_standardisation_is_saved_and_ignores_the_valid_fractions():
    emb = _embedding()
    mean, std = torch.full((SIZE,), 2.0), torch.full((SIZE,), 3.0)
    emb.set_standardisation(mean, std)
    layout = InputLayout(BINS)
    assert torch.all(emb.shift[layout.valid] == 0) and torch.all(emb.scale[layout.valid] == 1)
    assert torch.all(emb.shift[layout.map] == 2) and torch.all(emb.scale[layout.scalars] == 3)
    assert "shift" in emb.state_dict() and "scale" in emb.state_dict()


def test_a_dropped_frame_changes_only_through_the_mask():
    """Bins with no valid frame enter as 0 whatever value they hold."""
    emb = _embedding().eval()
    layout = InputLayout(BINS)
    x = _x(1)
    x[0, layout.valid.start + 3] = 0.0
    y = x.clone()
    image = y[0, layout.map].reshape(BINS, BINS)
    image[3, :] = 1e6
    image[:, 3] = -1e6
    y[0, layout.map] = image.reshape(-1)
    torch.testing.assert_close(emb(x), emb(y))


def test_coral_equals_the_formula_on_a_hand_example():
    a = torch.tensor([[1.0, 0.0], [3.0, 2.0], [2.0, 1.0]])
    b = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    # means (2, 1) and (0, 1): mean term 4. Covariances (n - 1): a [[1, 1], [1, 1]],
    # b [[0, 0], [0, 2]]; difference [[1, 1], [1, -1]], squared Frobenius 4, / (4 d^2) = 1/4.
    assert coral(a, b).item() == pytest.approx(4.25)


def test_coral_is_zero_for_identical_batches_and_positive_otherwise():
    a = torch.randn(50, 6, generator=torch.Generator().manual_seed(0))
    assert coral(a, a).item() == 0.0
    assert coral(a, a + 0.1).item() > 0
    with pytest.raises(ValueError):
        coral(a[:1], a)


def test_sample_given_is_reparameterised_and_matches_the_flow():
    flow = _flow()
    features = parts(flow).embedding(_x(3))
    torch.manual_seed(0)
    u = sample_given(flow, 4, features)
    assert u.shape == (4, 3, 3)
    u.sum().backward()
    assert any(p.grad is not None and torch.any(p.grad != 0) for p in flow.parameters())
    # log_prob_given with the same features is the flow's own log_prob
    x = _x(3)
    v = torch.rand(3, 3)
    torch.testing.assert_close(log_prob_given(flow, v, parts(flow).embedding(x)),
                               flow.log_prob(v[None], x)[0])


def test_phi_term_is_zero_when_the_surrogate_reproduces_the_data():
    flow = _flow()
    layout = InputLayout(BINS)
    x_e = _x(6, 3)
    scalars = x_e[:, layout.scalars]
    scalars[:, SCALARS.index("noise_only")] = 0
    scalars[:, SCALARS.index("phi_corrected")] = 0.3
    x_e[:, layout.scalars] = scalars
    surrogate = PhiSurrogate(8)
    with torch.no_grad():  # a surrogate that says Phi = 0.3 everywhere
        last = surrogate.net[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([np.log(0.3 / 0.7), 0.0]))
    config = TrainConfig(coral_weight=0.0, phi_weight=1.0)
    losses = npe_losses(flow, config, surrogate)(_x(8), torch.rand(8, 3), x_e)
    assert losses["phi"].item() == pytest.approx(0.0, abs=1e-12)
    scalars[:, SCALARS.index("phi_corrected")] = 0.5
    x_e[:, layout.scalars] = scalars
    losses = npe_losses(flow, config, surrogate)(_x(8), torch.rand(8, 3), x_e)
    assert losses["phi"].item() == pytest.approx(0.04, rel=1e-5)


def test_phi_term_leaves_out_maps_of_nothing_but_noise():
    flow = _flow()
    layout = InputLayout(BINS)
    x_e = _x(4, 5)
    x_e[:, layout.scalars.start + SCALARS.index("noise_only")] = 1.0
    config = TrainConfig(coral_weight=1.0, phi_weight=1.0)
    losses = npe_losses(flow, config, _surrogate())(_x(8), torch.rand(8, 3), x_e)
    assert losses["phi"].item() == 0.0 and losses["coral"].item() > 0


def test_point_estimates_lie_in_the_unit_cube():
    """The head ends in a sigmoid: even wild inputs give u_hat inside the prior's box."""
    regressor = _regressor()
    u = regressor(1e4 * _x(20, 7))
    assert u.shape == (20, 3) and torch.all((u >= 0) & (u <= 1))


def test_last_layers_name_the_output_layers_of_the_head():
    head = _head()
    assert head.last_layers(1) == ["net.4.weight", "net.4.bias"]
    assert head.last_layers(2) == ["net.2.weight", "net.2.bias", "net.4.weight", "net.4.bias"]
    with pytest.raises(ValueError):
        head.last_layers(4)
