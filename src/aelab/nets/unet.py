"""Skip-connected conv encoder-decoder for restoration (RED-Net, Mao, Shen & Yang 2016; the U-Net of Ronneberger et al.
2015 has the same shape): the conv AE of aelab.nets.conv, plus the feature map of every encoder stage but the last
added to the decoder's feature map of the same size (symmetric additive skips, as in RED-Net), and the input added
to the decoder's output, so the decoder learns the residual between target and input (RED-Net's outermost skip).

What the skips mean for the bottleneck: the code at the bottom is still the only path from the input to the
decoder's first stage, and it is what `encode` returns and what probes, samples and interpolations use; the skips
carry the spatial detail the input already holds, so `reconstruct(x)` (which passes them) only has to supply what
the input lacks (colour, the clean signal). `decode(z)` alone takes no skips: the missing skip maps are zeros. To
keep that path useful the decoder is trained with `skip_dropout`: each training example loses all of its skips
with that probability and must then be reconstructed from its code alone. `skips: false` turns the skips off and
leaves exactly the conv AE (same modules, parameters and state-dict keys); skips add no parameters.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from aelab.core.errors import ConfigError
from aelab.nets.conv import ConvDecoder, ConvEncoder


class UNetEncoder(ConvEncoder):
    """ConvEncoder that also returns its input and its stage outputs (all but the last, which becomes the code) as skips."""

    def __init__(self, in_shape: list[int], channels: list[int], activation: Callable[[], nn.Module],
                 skips: bool = True, kernel_size: int = 3) -> None:
        super().__init__(in_shape, channels, activation, kernel_size)
        self.skips = bool(skips)
        convs = [i for i, layer in enumerate(self.net) if isinstance(layer, (nn.Conv1d, nn.Conv2d))]
        self.taps = [i + 1 for i in convs[:-1]]  # after each stage's activation, except the bottom stage

    def with_skips(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """Features (B, out_dim) and the skip maps top to bottom [(B, C_k, H_k, W_k)], or None with skips off."""
        if not self.skips:
            return self.net(x), None
        maps = [x]
        for i, layer in enumerate(self.net):
            x = layer(x)
            if i in self.taps:
                maps.append(x)
        return x, maps


class UNetDecoder(ConvDecoder):
    """ConvDecoder that adds each skip map to its same-sized feature map before the next transposed conv, and the
    input (the first skip) to its output."""

    def __init__(self, out_shape: list[int], latent_dim: int, channels: list[int], activation: Callable[[], nn.Module],
                 skip_dropout: float = 0.0, kernel_size: int = 3) -> None:
        super().__init__(out_shape, latent_dim, channels, activation, kernel_size)
        if not 0.0 <= skip_dropout < 1.0:
            raise ConfigError(f"unet: model.decoder.skip_dropout must be in [0, 1), got {skip_dropout!r}")
        self.skip_dropout = skip_dropout
        ups = [i for i, layer in enumerate(self.net) if isinstance(layer, (nn.ConvTranspose1d, nn.ConvTranspose2d))]
        self.merges = ups[1:]  # before every transposed conv but the first: the map there has a skip's size

    def forward(self, z: torch.Tensor, skips: list[torch.Tensor] | None = None) -> torch.Tensor:
        """(B, d) and optional skip maps (top to bottom, as the encoder gives them) -> (B, C, H, W) or (B, C, L)."""
        if skips is None:
            return self.net(z)
        if self.training and self.skip_dropout > 0:  # per example, all skips at once: the code alone must do
            keep = (torch.rand(len(z), *[1] * (skips[0].ndim - 1), device=z.device) >= self.skip_dropout).to(z.dtype)
            skips = [s * keep for s in skips]
        pending = list(reversed(skips))  # bottom-up, the order the decoder meets them
        h = z
        for i, layer in enumerate(self.net):
            if i in self.merges:
                h = h + pending.pop(0)
            h = layer(h)
        return h + pending.pop(0)  # the input: (B, C, H, W) or (B, C, L)
