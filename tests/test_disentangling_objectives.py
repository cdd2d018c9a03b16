"""Disentangling objectives against exact values: the beta-TCVAE estimators of MI and TC on a finite dataset with
known posteriors, the DIP-VAE penalties on codes of known covariance, the RBF MMD^2 against its Gaussian closed
form; and the five variants trained one short epoch through the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from aelab.bottlenecks.dip import DIPGaussian, dip_covariance, dip_penalties
from aelab.bottlenecks.info import rbf_mmd
from aelab.bottlenecks.tc import kl_decomposition
from helpers import train_through_cli

N, D = 128, 3  # a finite dataset of N posteriors q(z|x_n) = N(mu_n, diag(exp(logvar_n))) in D dimensions


def finite_dataset(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means with correlated dimensions (so q(z) has a total correlation) and variances 0.05..0.35."""
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.5, 0.5]])
    mu = torch.randn(N, D, generator=gen) @ mix.T  # (N, D)
    return mu, torch.log(0.05 + 0.3 * torch.rand(N, D, generator=gen))


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z_sk; mu_nk, exp(logvar_nk)): (S, D) x (N, D) -> (S, N, D)."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z[:, None] - mu[None]).pow(2) / logvar.exp())


def exact_terms(mu: torch.Tensor, logvar: torch.Tensor, gen: torch.Generator, per_point: int = 200) -> dict[str, float]:
    """MI, TC and dimension-wise KL of q(z) = (1/N) sum_n q(z|x_n): Monte Carlo over z with the exact mixture
    densities (every n enumerated; MC standard errors ~0.008 and ~0.005 nats)."""
    n = torch.arange(N).repeat_interleave(per_point)
    z = mu[n] + torch.randn(len(n), D, generator=gen) * (0.5 * logvar[n]).exp()  # (N*S, D)
    log_q = log_normal(z, mu, logvar)  # (N*S, N, D)
    log_q_given_x = log_q[torch.arange(len(n)), n].sum(-1)
    log_qz = torch.logsumexp(log_q.sum(-1), 1) - math.log(N)
    log_marginals = (torch.logsumexp(log_q, 1) - math.log(N)).sum(-1)
    log_pz = -0.5 * (math.log(2 * math.pi) + z.pow(2)).sum(-1)
    return {"mi": float((log_q_given_x - log_qz).mean()), "tc": float((log_qz - log_marginals).mean()),
            "dwkl": float((log_marginals - log_pz).mean())}


def estimated_terms(mu: torch.Tensor, logvar: torch.Tensor, batch: int, estimator: str, gen: torch.Generator,
                    repeats: int = 200) -> dict[str, float]:
    """The estimators' batch means, averaged over `repeats` batches drawn without replacement, one z per example."""
    sums = {"mi": 0.0, "tc": 0.0, "dwkl": 0.0}
    for _ in range(repeats):
        idx = torch.randperm(N, generator=gen)[:batch]
        z = mu[idx] + torch.randn(batch, D, generator=gen) * (0.5 * logvar[idx]).exp()
        for name, value in kl_decomposition(z, mu[idx], logvar[idx], N, estimator).items():
            sums[name] += float(value.mean()) / repeats
    return sums


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_tc_estimators_approach_the_exact_mi_and_tc_as_the_batch_grows(estimator: str) -> None:
    gen = torch.Generator().manual_seed(0)
    mu, logvar = finite_dataset(gen)
    exact = exact_terms(mu, logvar, gen)
    assert exact["mi"] > 1.0 and exact["tc"] > 0.3  # the dataset has both to estimate
    errors = {}
    for batch in (16, 64, N):
        est = estimated_terms(mu, logvar, batch, estimator, gen)
        errors[batch] = {name: abs(est[name] - exact[name]) for name in ("mi", "tc", "dwkl")}
    total = {batch: sum(e.values()) for batch, e in errors.items()}
    assert total[16] > total[64] > total[N], errors
    assert max(errors[N].values()) < 0.05, errors  # the whole dataset as the batch: MC error only (~0.01 here)


def white(batch: int, d: int, gen: torch.Generator) -> torch.Tensor:
    """Codes (batch, d) with zero mean and batch covariance (1/B, as DIP-VAE uses) exactly I."""
    x = torch.randn(batch, d, generator=gen, dtype=torch.float64)
    x = x - x.mean(0)
    chol = torch.linalg.cholesky(x.T @ x / batch)
    return torch.linalg.solve_triangular(chol, x.T, upper=False).T  # (B, d): L^-1 x


def test_dip_penalties_vanish_for_an_identity_covariance_and_match_the_formula_on_a_known_one() -> None:
    gen = torch.Generator().manual_seed(0)
    w = white(256, 3, gen)
    no_noise = torch.full_like(w, -torch.inf)  # sigma^2 = 0: type ii's covariance is type i's
    for penalty in dip_penalties(dip_covariance(w, no_noise, "i")) + dip_penalties(dip_covariance(w, no_noise, "ii")):
        assert float(penalty) == pytest.approx(0.0, abs=1e-12)
    # type ii: Cov[mu] = 0.7 I plus E[sigma^2] = 0.3 makes the covariance of q(z) the identity
    assert [float(p) for p in dip_penalties(dip_covariance(0.7**0.5 * w, torch.full_like(w, math.log(0.3)), "ii"))] \
        == pytest.approx([0.0, 0.0], abs=1e-12)
    cov = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, -0.3], [0.0, -0.3, 0.5]], dtype=torch.float64)
    mu = w @ torch.linalg.cholesky(cov).T  # batch covariance exactly cov
    logvar = torch.log(torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)).expand_as(mu)
    offdiag = 2 * (0.5**2 + 0.3**2)
    assert [float(p) for p in dip_penalties(dip_covariance(mu, logvar, "i"))] == pytest.approx([offdiag, 1.0 + 0.25])
    assert [float(p) for p in dip_penalties(dip_covariance(mu, logvar, "ii"))] \
        == pytest.approx([offdiag, 1.1**2 + 0.2**2 + 0.2**2])


def test_dip_bottleneck_emits_the_penalties_of_its_posterior_for_every_example() -> None:
    bottleneck = DIPGaussian(in_features=3, latent_dim=3, dip_type="ii").double()
    with torch.no_grad():  # mu = h, logvar = log 0.2: the posterior is known
        bottleneck.proj.weight.copy_(torch.cat([torch.eye(3), torch.zeros(3, 3)]))
        bottleneck.proj.bias.copy_(torch.cat([torch.zeros(3), torch.full((3,), math.log(0.2))]))
    cov = torch.tensor([[1.5, 0.4, 0.0], [0.4, 0.8, 0.0], [0.0, 0.0, 0.8]], dtype=torch.float64)
    h = white(64, 3, torch.Generator().manual_seed(1)) @ torch.linalg.cholesky(cov).T
    terms = bottleneck(h).terms
    assert terms["dip_offdiag"].shape == (64,) and terms["dip_diag"].shape == (64,)
    torch.testing.assert_close(terms["dip_offdiag"], torch.full((64,), 2 * 0.4**2, dtype=torch.float64))
    torch.testing.assert_close(terms["dip_diag"], torch.full((64,), 0.7**2, dtype=torch.float64))  # (1.7-1)^2 + 0 + 0


def expected_rbf(m: float, s2: float, h2: float, d: int) -> float:
    """E k(x, y) for x - y ~ N(m 1, s2 I) in d dimensions and k = exp(-||x - y||^2 / (2 h2))."""
    return (h2 / (h2 + s2)) ** (d / 2) * math.exp(-d * m**2 / (2 * (h2 + s2)))


def test_rbf_mmd_matches_the_closed_form_between_two_gaussians() -> None:
    """N(0, 0.5^2 I) vs N(0.3 * 1, 1.2^2 I) in d = 4, h = 1.5: 4000 samples each; the estimate's sd is ~0.003."""
    torch.manual_seed(0)
    d, n, m2, s1, s2, h = 4, 4000, 0.3, 0.5, 1.2, 1.5
    x = s1 * torch.randn(n, d, dtype=torch.float64)
    y = m2 + s2 * torch.randn(n, d, dtype=torch.float64)
    closed = (expected_rbf(0.0, 2 * s1**2, h**2, d) + expected_rbf(0.0, 2 * s2**2, h**2, d)
              - 2 * expected_rbf(m2, s1**2 + s2**2, h**2, d))
    assert closed > 0.1
    assert float(rbf_mmd(x, y, h)) == pytest.approx(closed, abs=0.01)
    assert float(rbf_mmd(x, s1 * torch.randn(n, d, dtype=torch.float64), h)) == pytest.approx(0.0, abs=0.01)


VARIANT_TERMS = {"beta_tcvae": ("kl", "mi", "tc", "dwkl"), "dip_vae_i": ("kl", "dip_offdiag", "dip_diag"),
                 "dip_vae_ii": ("kl", "dip_offdiag", "dip_diag"), "info_vae": ("kl", "mmd"), "mmd_vae": ("kl", "mmd")}


@pytest.mark.slow
def test_each_variant_trains_an_epoch_through_the_cli_and_records_its_terms(tmp_path: Path) -> None:
    """One short epoch of each (processes in parallel): the run completes and its named terms are finite."""
    results = train_through_cli({variant: [] for variant in VARIANT_TERMS}, tmp_path)
    for variant, names in VARIANT_TERMS.items():
        result = results[variant]
        for key in [f"{stage}/{name}" for stage in ("train", "test") for name in (*names, "elbo")]:
            assert math.isfinite(result["metrics"][key]), (variant, key)
