r"""The map embedding f(x): a small CNN over the reduced map, joined with the lag profile and
the scalars (docs/inference.md#what-the-network-sees).

The input x is the vector of :mod:`gbsbi.inference.inputs`. Its parts are standardised with
fixed statistics of the training bank (buffers, saved with the weights), the map's bins where
no frame is valid are set to 0 after standardisation, and the mask channel
m(a, b) = valid_a valid_b joins the map as a second image channel. The output f(x) is the
feature vector on which CORAL acts, which conditions the flow and which the
misspecification test uses.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gbsbi.inference.config import EmbeddingConfig
from gbsbi.inference.inputs import InputLayout


class MapEmbedding(nn.Module):
    r"""f(x), from input vectors of shape (*, D) to features of shape (*, F).

    Args:
        bins: R, bins per axis of the reduced map.
        config: the network's sizes.
        aged: whether x ends with the window's age (:class:`InputLayout`).
    """

    def __init__(self, bins: int, config: EmbeddingConfig, aged: bool = False) -> None:
        super().__init__()
        if bins % 2 ** len(config.channels):
            raise ValueError(
                f"{bins} bins cannot be pooled {len(config.channels)} times by 2; choose bins "
                f"divisible by {2 ** len(config.channels)}"
            )
        self.layout = InputLayout(bins, aged)
        size = self.layout.size
        self.register_buffer("shift", torch.zeros(size))
        self.register_buffer("scale", torch.ones(size))
        layers: list[nn.Module] = []
        previous = 2
        for width in config.channels:
            layers += [nn.Conv2d(previous, width, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2)]
            previous = width
        self.cnn = nn.Sequential(*layers, nn.Flatten())
        side = bins // 2 ** len(config.channels)
        vector = bins + (self.layout.scalars.stop - self.layout.scalars.start)
        self.profile = nn.Sequential(nn.Linear(vector, config.hidden), nn.ReLU())
        self.head = nn.Sequential(
            nn.Linear(previous * side * side + config.hidden, config.hidden), nn.ReLU(),
            nn.Linear(config.hidden, config.features),
        )

    def set_standardisation(self, mean: Tensor, std: Tensor) -> None:
        """Fix the input statistics (shape (D,) each); the valid fractions stay unscaled."""
        keep = torch.zeros(self.layout.size, dtype=torch.bool)
        keep[self.layout.valid] = True
        self.shift.copy_(torch.where(keep, 0.0, mean))
        self.scale.copy_(torch.where(keep, 1.0, std.clamp_min(1e-6)))

    def forward(self, x: Tensor) -> Tensor:
        """Features f(x), shape (*, F), of inputs x of shape (*, D)."""
        batch = x.shape[:-1]
        x = ((x - self.shift) / self.scale).reshape(-1, x.shape[-1])
        R = self.layout.bins
        valid = x[:, self.layout.valid]
        mask = valid[:, :, None] * valid[:, None, :]
        image = x[:, self.layout.map].reshape(-1, R, R) * (mask > 0)
        conv = self.cnn(torch.stack([image, mask], dim=1))
        vector = torch.cat([x[:, self.layout.lags], x[:, self.layout.scalars]], dim=-1)
        out = self.head(torch.cat([conv, self.profile(vector)], dim=-1))
        return out.reshape(*batch, -1)
