"""InfoVAE (Zhao et al. 2019, "InfoVAE: Balancing Learning and Inference in Variational Autoencoders").

The objective (the InfoVAE family with the divergence D = MMD) is
  E[-log p(x|z)] + (1 - alpha) KL(q(z|x) || p(z)) + (alpha + lambda - 1) MMD^2(q(z), p(z)),
so the YAML weights `kl` by 1 - alpha and `mmd` by alpha + lambda - 1 (MMD-VAE: alpha = 1, no KL). The MMD^2 is
the unbiased estimate between the batch of posterior samples z and as many N(0, I) samples, with the Gaussian
kernel k(x, y) = exp(-||x - y||^2 / (2 h^2)); by default 2 h^2 = d^2, the kernel of the authors' code
(ShengjiaZhao/MMD-Variational-Autoencoder, `compute_kernel`: exp(-mean_k (x_k - y_k)^2 / d)).
"""

from __future__ import annotations

import torch

from aelab.bottlenecks.base import BottleneckOutput
from aelab.bottlenecks.gaussian import DiagonalGaussian
from aelab.core.errors import ConfigError


def rbf_mmd(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Unbiased MMD^2 between samples x (n, d) and y (m, d) under k = exp(-||x - y||^2 / (2 bandwidth^2))."""
    n, m = len(x), len(y)
    k = lambda a, b: torch.exp(-torch.cdist(a, b).pow(2) / (2.0 * bandwidth**2))  # noqa: E731  (n, d) x (m, d) -> (n, m)
    kxx, kyy = k(x, x), k(y, y)
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return within_x + within_y - 2.0 * k(x, y).mean()


class InfoGaussian(DiagonalGaussian):
    """DiagonalGaussian that also emits `mmd` (the batch's RBF MMD^2 of z against N(0, I), the same for every example)."""

    terms = ("kl", "mmd")

    def __init__(self, in_features: int, latent_dim: int, bandwidth: float | None = None) -> None:
        super().__init__(in_features, latent_dim)
        if bandwidth is not None and not bandwidth > 0:
            raise ConfigError(f"model.bottleneck.bandwidth must be positive (or null for sqrt(d^2 / 2)), got {bandwidth!r}")
        self.bandwidth = bandwidth if bandwidth is not None else latent_dim / 2**0.5  # 2 h^2 = d^2

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        out = super().forward(h)
        z = out.z
        mmd = rbf_mmd(z, torch.randn_like(z), self.bandwidth) if len(z) > 1 else z.new_zeros(())
        out.terms["mmd"] = mmd.expand(len(z))
        return out
