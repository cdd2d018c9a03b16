"""beta-TCVAE: the KL split into index-code MI, total correlation and dimension-wise KL (Chen et al. 2018,
"Isolating Sources of Disentanglement in Variational Autoencoders").

With z_i ~ q(z|x_i) and q(z) = (1/N) sum_n q(z|x_n) the aggregate posterior over the N training examples,
  mi_i   = log q(z_i|x_i) - log q(z_i)
  tc_i   = log q(z_i) - sum_k log q(z_ik)
  dwkl_i = sum_k log q(z_ik) - log p(z_i)
sum to the single-sample KL estimate log q(z_i|x_i) - log p(z_i). q(z_i) (and each marginal q(z_ik)) is estimated
from the batch as sum_j w_ij q(z_i|x_j):
  mws (minibatch weighted sampling, Sec. 4.1): w_ij = 1/B. The paper prints the normaliser 1/(N B), whose weights
      sum to 1/N: each log q then carries the constant -log N (no gradient, but MI is off by log N and TC by
      (d - 1) log N); with 1/B the estimate is exact when the batch is the whole dataset.
  mss (minibatch stratified sampling, appendix): with M = B - 1 other examples, w_ii = 1/N, one other example
      (the next one, cyclically) (N - M) / (N M), the remaining M - 1 others 1/M; the weights sum to 1.
N comes from `set_dataset_size` (a buffer, kept in checkpoints); unset (0) or smaller than the batch, N = B.
"""

from __future__ import annotations

import math

import torch

from aelab.bottlenecks.base import BottleneckOutput
from aelab.bottlenecks.gaussian import DiagonalGaussian
from aelab.core.errors import ConfigError

ESTIMATORS = ("mws", "mss")
LOG_2PI = math.log(2.0 * math.pi)


def log_weights(batch: int, dataset_size: int, estimator: str) -> torch.Tensor:
    """log w (B, B): row i weighs the batch's posteriors q(.|x_j) in the estimate of q(z_i)."""
    if estimator == "mws" or batch < 2:  # one example: q(z) is its own posterior under either estimator
        return torch.full((batch, batch), -math.log(batch))
    n, m = max(dataset_size, batch), batch - 1
    w = torch.full((batch, batch), 1.0 / m)
    w[torch.arange(batch), (torch.arange(batch) + 1) % batch] = (n - m) / (n * m)
    w.fill_diagonal_(1.0 / n)
    return w.log()


def kl_decomposition(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int,
                     estimator: str) -> dict[str, torch.Tensor]:
    """Per-example `mi`, `tc` and `dwkl` (B,) of codes z (B, d) drawn from N(mu, exp(logvar)) (B, d)."""
    # log q(z_ik | x_j): (B, 1, d) against (1, B, d) -> (B, B, d)
    log_q = -0.5 * (LOG_2PI + logvar.unsqueeze(0) + (z.unsqueeze(1) - mu.unsqueeze(0)).pow(2) / logvar.exp().unsqueeze(0))
    log_w = log_weights(len(z), dataset_size, estimator).to(z)  # (B, B)
    log_q_given_x = log_q.diagonal(dim1=0, dim2=1).sum(0)  # (d, B) -> (B,)
    log_qz = torch.logsumexp(log_w + log_q.sum(-1), dim=1)  # (B, B) -> (B,)
    log_marginals = torch.logsumexp(log_w.unsqueeze(-1) + log_q, dim=1).sum(-1)  # (B, B, d) -> (B, d) -> (B,)
    log_pz = -0.5 * (LOG_2PI + z.pow(2)).sum(-1)  # (B, d) -> (B,)
    return {"mi": log_q_given_x - log_qz, "tc": log_qz - log_marginals, "dwkl": log_marginals - log_pz}


class TCGaussian(DiagonalGaussian):
    """DiagonalGaussian that also emits `mi`, `tc` and `dwkl`; `kl` (closed form) stays the ELBO term."""

    terms = ("kl", "mi", "tc", "dwkl")

    def __init__(self, in_features: int, latent_dim: int, estimator: str = "mss") -> None:
        super().__init__(in_features, latent_dim)
        if estimator not in ESTIMATORS:
            raise ConfigError(f"model.bottleneck.estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
        self.estimator = estimator
        self.register_buffer("dataset_size", torch.zeros((), dtype=torch.long))  # N; 0 until set_dataset_size

    def set_dataset_size(self, n: int) -> None:
        self.dataset_size.fill_(n)

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        out = super().forward(h)
        mu, logvar = self.posterior(h)  # the same (deterministic) parameters the sample z was drawn from
        out.terms |= kl_decomposition(out.z, mu, logvar, int(self.dataset_size), self.estimator)
        return out
