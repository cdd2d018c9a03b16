"""Reconstruction likelihoods p(x|z): the decoder's output parameterises them; `nll` is summed per sample."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from aelab.core.errors import ConfigError


class Likelihood(nn.Module):
    """`nll(out, target) -> (B,)` negative log-likelihood in nats; `mean(out)` the reconstruction."""

    def nll(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Gaussian(Likelihood):
    """N(target; out, sigma^2 I): nll = sum 0.5 ((t - out) / sigma)^2 + log sigma + 0.5 log 2 pi (MSE up to scale).

    `learn_sigma` makes log sigma a trained parameter starting at log `sigma` (the learned decoder variance, gamma,
    of Dai & Wipf 2019), so the fit sets the weight of the reconstruction against the other terms.
    """

    def __init__(self, sigma: float = 1.0, learn_sigma: bool = False) -> None:
        super().__init__()
        if sigma <= 0:
            raise ConfigError(f"model.likelihood.sigma must be positive, got {sigma}")
        log_sigma = torch.tensor(math.log(sigma))
        if learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma, persistent=False)  # fixed: not part of the checkpoint

    @property
    def sigma(self) -> float:
        return float(self.log_sigma.exp())

    def nll(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        per_dim = 0.5 * (target - out).pow(2) * torch.exp(-2 * self.log_sigma) + self.log_sigma + 0.5 * math.log(2 * math.pi)
        return per_dim.flatten(1).sum(dim=1)  # (B, ...) -> (B,)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return out


class Bernoulli(Likelihood):
    """Bernoulli(target; sigmoid(out)) on [0, 1] intensities: nll = summed binary cross-entropy with logits."""

    def nll(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(out, target, reduction="none").flatten(1).sum(dim=1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out)
