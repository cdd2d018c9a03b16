"""The hyperspherical (svae) and Poincare-ball (pvae) latent spaces against known answers: log I_v against scipy and
finite differences, Wood's sampler against the mean resultant length A_d(kappa), the vMF KL against numerical
integration on S^2; the ball's distance against its arcosh form, exp/log as inverses, the wrapped normal's density
integrating to 1 on the disc in two coordinate systems, its sampler against that density, its Monte Carlo KL against
the integral; and both variants trained one short epoch through the CLI with an importance-weighted NLL."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import integrate, special

from aelab.bottlenecks.poincare import (
    WrappedNormalPoincare,
    conformal,
    distance,
    expmap,
    logmap,
    project,
    sample_wrapped_normal,
    wrapped_normal_log_prob,
)
from aelab.bottlenecks.spherical import (
    VonMisesFisher,
    kl_vmf_uniform,
    log_bessel_i,
    log_sphere_area,
    sample_vmf,
    vmf_log_prob,
)
from helpers import train_through_cli

D64 = torch.float64


def test_log_bessel_matches_scipy_and_the_large_argument_asymptote() -> None:
    k = torch.tensor([0.05, 0.5, 1.0, 5.0, 20.0, 100.0], dtype=D64)
    for v in (0.0, 0.5, 3.0, 4.5, 15.0):
        expected = np.log(special.iv(v, k.numpy()))
        np.testing.assert_allclose(log_bessel_i(v, k).numpy(), expected, rtol=1e-10, atol=1e-10)
    big = torch.tensor([2e3, 1e5], dtype=D64)  # iv overflows: I_v(k) ~ e^k / sqrt(2 pi k) sum_j (-1)^j a_j(v) / k^j
    for v in (3.0, 31.0):
        a_j, total = torch.ones_like(big), torch.ones_like(big)
        for j in range(1, 8):  # a_j = prod_{i <= j} (4 v^2 - (2i - 1)^2) / (j! 8^j)
            a_j = -a_j * (4 * v**2 - (2 * j - 1) ** 2) / (8 * j * big)
            total = total + a_j
        series = big - 0.5 * torch.log(2 * math.pi * big) + torch.log(total)
        torch.testing.assert_close(log_bessel_i(v, big), series, rtol=1e-12, atol=1e-9)


def test_log_bessel_gradient_matches_finite_differences() -> None:
    for v in (0.0, 2.5, 3.0, 15.0):
        k = torch.tensor([0.3, 1.0, 7.0, 60.0, 2000.0], dtype=D64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda x, v=v: log_bessel_i(v, x), (k,), eps=1e-6, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("d", [3, 10])
def test_wood_sampler_mean_resultant_length_is_the_bessel_ratio(d: int) -> None:
    """E[mu^T z] = A_d(kappa) and E[z] = A_d(kappa) mu, within 4 Monte Carlo standard errors (20000 samples)."""
    torch.manual_seed(0)
    n = 20000
    for kappa in (1.0, 10.0, 100.0):
        mu = F.normalize(torch.randn(1, d, dtype=D64), dim=-1).expand(n, d)
        z = sample_vmf(mu, torch.full((n, 1), kappa, dtype=D64))
        torch.testing.assert_close(z.norm(dim=-1), torch.ones(n, dtype=D64))
        a_d = special.iv(d / 2, kappa) / special.iv(d / 2 - 1, kappa)
        w = (z * mu).sum(-1)
        assert abs(float(w.mean()) - a_d) < 4 * float(w.std()) / n**0.5, (d, kappa, float(w.mean()), a_d)
        error = (z.mean(0) - a_d * mu[0]).abs()
        assert (error < 4 * z.std(0) / n**0.5).all(), (d, kappa, error)


def test_vmf_kl_to_uniform_matches_numerical_integration_on_s2() -> None:
    """In 3-D q(theta) = kappa / (4 pi sinh kappa) exp(kappa cos theta); KL = int q log(4 pi q) dA, t = 1 - cos theta."""
    def integrand(t: float, k: float) -> float:  # 2 pi q log(4 pi q), dA = 2 pi dt
        log_q = math.log(k / (2 * math.pi * -math.expm1(-2 * k))) - k * t
        return 2 * math.pi * math.exp(log_q) * (log_q + math.log(4 * math.pi))

    for kappa in (0.5, 3.0, 30.0, 300.0):
        exact, _ = integrate.quad(integrand, 0, 2, args=(kappa,), limit=200, points=[min(1.0, 10 / kappa)])
        assert float(kl_vmf_uniform(torch.tensor([kappa], dtype=D64), 3)) == pytest.approx(exact, rel=1e-8, abs=1e-10)


def test_vmf_log_density_integrates_to_one_on_s2() -> None:
    """Gauss-Legendre in cos(theta) times a uniform grid in phi, about an axis that is not mu."""
    nodes, weights = np.polynomial.legendre.leggauss(400)
    phi = torch.arange(800, dtype=D64) * 2 * math.pi / 800
    cos, ph = torch.meshgrid(torch.from_numpy(nodes), phi, indexing="ij")
    sin = (1 - cos**2).sqrt()
    z = torch.stack([sin * ph.cos(), sin * ph.sin(), cos], dim=-1)  # (400, 800, 3)
    mu = F.normalize(torch.tensor([0.3, -0.5, 0.2], dtype=D64), dim=0).expand_as(z)
    for kappa in (0.7, 5.0, 50.0):
        density = vmf_log_prob(z, mu, torch.full((*z.shape[:2], 1), kappa, dtype=D64)).exp()
        total = float((density * torch.from_numpy(weights)[:, None]).sum() * 2 * math.pi / 800)
        assert total == pytest.approx(1.0, abs=1e-8), kappa


def test_vmf_importance_weights_average_to_the_closed_form_kl_in_8d() -> None:
    """E_q[log q(z) - log p(z)] = KL(q || U): the density and the sampler of d = 8 agree with the closed form."""
    torch.manual_seed(0)
    bottleneck = VonMisesFisher(in_features=8, latent_dim=8).double()
    with torch.no_grad():  # mu = h normalised, kappa = softplus(bias) + 1
        bottleneck.proj.weight.copy_(torch.cat([torch.eye(8), torch.zeros(1, 8)]))
        bottleneck.proj.bias.copy_(torch.tensor([0.0] * 8 + [20.0]))
    h = torch.randn(2, 8, dtype=D64)
    z, log_ratio = bottleneck.importance_samples(h, 20000)  # (k, 2, 8), (k, 2)
    assert torch.allclose(z.norm(dim=-1), torch.ones_like(log_ratio))
    kl = kl_vmf_uniform(torch.tensor([21.0], dtype=D64), 8)
    assert (-log_ratio.mean(0) - kl).abs().max() < 4 * log_ratio.std(0).max() / 20000**0.5
    assert float(bottleneck(h).terms["kl"][0].detach()) == pytest.approx(float(kl))
    assert float(log_sphere_area(3)) == pytest.approx(math.log(4 * math.pi))


def ball_points(n: int, d: int, c: float, gen: torch.Generator) -> torch.Tensor:
    """n points spread over the ball of curvature -c, up to hyperbolic distance ~6 from the origin."""
    direction = F.normalize(torch.randn(n, d, generator=gen, dtype=D64), dim=-1)
    return direction * torch.tanh(3 * torch.rand(n, 1, generator=gen, dtype=D64)) / math.sqrt(c)


@pytest.mark.parametrize("c", [1.0, 0.3])
def test_ball_distance_is_the_arcosh_form_and_exp_log_are_inverse(c: float) -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = ball_points(500, 5, c, gen), ball_points(500, 5, c, gen)
    sq = lambda p: 1 - c * p.pow(2).sum(-1)  # noqa: E731
    arcosh = torch.acosh(1 + 2 * c * (x - y).pow(2).sum(-1) / (sq(x) * sq(y))) / math.sqrt(c)
    torch.testing.assert_close(distance(x, y, c), arcosh, rtol=1e-9, atol=1e-9)
    v = logmap(x, y, c)
    torch.testing.assert_close(expmap(x, v, c), y, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close((conformal(x, c) * v).norm(dim=-1), arcosh, rtol=1e-9, atol=1e-9)  # |log_x y|_x = d(x, y)
    u = torch.randn(500, 5, generator=gen, dtype=D64) / conformal(x, c)  # Riemannian norm ~ sqrt(5)
    torch.testing.assert_close(logmap(x, expmap(x, u, c), c), u, rtol=1e-8, atol=1e-8)
    assert (project(10 * x, c).norm(dim=-1) < 1 / math.sqrt(c)).all()


def disc_grid(c: float, radius: float = 14.0, n_r: int = 1400, n_t: int = 192) -> tuple[torch.Tensor, torch.Tensor]:
    """Points z (n_r, n_t, 2) of the disc on a geodesic polar grid about 0 and their hyperbolic area elements
    sinh(sqrt(c) s) / sqrt(c) ds dtheta (midpoint rule in s and theta)."""
    ds, dt = radius / n_r, 2 * math.pi / n_t
    s, t = torch.meshgrid((torch.arange(n_r, dtype=D64) + 0.5) * ds, (torch.arange(n_t, dtype=D64) + 0.5) * dt,
                          indexing="ij")  # no node on the axes: the regions below cut the grid between nodes
    rho = torch.tanh(math.sqrt(c) * s / 2) / math.sqrt(c)  # d_c(0, z) = s
    return torch.stack([rho * t.cos(), rho * t.sin()], -1), torch.sinh(math.sqrt(c) * s) / math.sqrt(c) * ds * dt


CASES = [(1.0, (0.0, 0.0), (1.0, 1.0)), (1.0, (0.5, -0.3), (0.4, 0.7)), (1.0, (0.0, 0.8), (0.5, 0.5)),
         (0.5, (0.6, 0.6), (0.8, 0.5))]  # (c, mu, sigma)


def wn_density(z: torch.Tensor, c: float, mu: tuple, sigma: tuple) -> torch.Tensor:
    """The wrapped normal density w.r.t. the Riemannian volume at points z (..., 2)."""
    return wrapped_normal_log_prob(z, torch.tensor(mu, dtype=D64).expand_as(z), torch.tensor(sigma, dtype=D64).expand_as(z), c).exp()


@pytest.mark.parametrize(("c", "mu", "sigma"), CASES)
def test_wrapped_normal_density_integrates_to_one_on_the_disc(c: float, mu: tuple, sigma: tuple) -> None:
    """Against the Riemannian volume in geodesic polar coordinates, and as the Lebesgue density q lambda_z^2 in
    Euclidean polar coordinates r dr dtheta: both give 1."""
    z, area = disc_grid(c)
    assert float((wn_density(z, c, mu, sigma) * area).sum()) == pytest.approx(1.0, abs=2e-5)
    n_r, n_t = 2000, 192
    dr, dt = 1 / math.sqrt(c) / n_r, 2 * math.pi / n_t
    r, t = torch.meshgrid((torch.arange(n_r, dtype=D64) + 0.5) * dr, torch.arange(n_t, dtype=D64) * dt, indexing="ij")
    z = torch.stack([r * t.cos(), r * t.sin()], -1)
    lebesgue = wn_density(z, c, mu, sigma) * conformal(z, c).squeeze(-1) ** 2  # dM = lambda_z^d dz
    assert float((lebesgue * r).sum() * dr * dt) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(("c", "mu", "sigma"), CASES[1:])
def test_wrapped_normal_sampler_agrees_with_its_density(c: float, mu: tuple, sigma: tuple) -> None:
    """P(z_1 > mu_1) and P(|z| < |mu|) from 50000 samples vs the integral of the density (4 standard errors)."""
    torch.manual_seed(0)
    n = 50000
    samples = sample_wrapped_normal(torch.tensor(mu, dtype=D64).expand(n, 2), torch.tensor(sigma, dtype=D64).expand(n, 2), c)
    z, area = disc_grid(c)
    mass = wn_density(z, c, mu, sigma) * area
    mu_t = torch.tensor(mu, dtype=D64)
    for region in (lambda p: p[..., 0] > mu_t[0], lambda p: p.norm(dim=-1) < mu_t.norm()):
        exact = float((mass * region(z)).sum())
        frequency = float(region(samples).double().mean())
        assert abs(frequency - exact) < 4 * math.sqrt(exact * (1 - exact) / n) + 2e-3, (frequency, exact)


def test_pvae_monte_carlo_kl_matches_the_integral_on_the_disc() -> None:
    """E_q[log q - log p] from the bottleneck's samples vs int q log(q / p) dM with p = WN(0, 1), c = 1."""
    torch.manual_seed(0)
    c, mu, sigma = 1.0, (0.5, -0.3), (0.4, 0.7)
    z, area = disc_grid(c)
    q, p = wn_density(z, c, mu, sigma), wn_density(z, c, (0.0, 0.0), (1.0, 1.0))
    exact = float((q * (q.log() - p.log()) * area).sum())
    bottleneck = WrappedNormalPoincare(in_features=4, latent_dim=2, curvature=c)
    n = 100000
    _, log_ratio = bottleneck.draw(torch.tensor(mu, dtype=D64).expand(n, 2), torch.tensor(sigma, dtype=D64).expand(n, 2))
    assert abs(float(-log_ratio.mean()) - exact) < 4 * float(log_ratio.std()) / n**0.5, (float(-log_ratio.mean()), exact)


@pytest.mark.slow
def test_svae_and_pvae_train_an_epoch_and_report_an_importance_weighted_nll(tmp_path: Path) -> None:
    """One short epoch of each through the CLI (processes in parallel), then eval=likelihood on 100 test examples."""
    variants = ("svae", "pvae")

    extra = ["model/arch=mlp", "model.latent_dim=8", "callbacks.embeddings=null", "eval=[likelihood]",
             "eval.likelihood.k=10", "eval.likelihood.max_examples=100"]
    results = train_through_cli({variant: extra for variant in variants}, tmp_path)
    for variant, result in results.items():
        for key in ("train/elbo", "train/kl", "test/elbo", "test/kl", "test/iw_nll"):
            assert math.isfinite(result["metrics"][key]), (variant, key)
    assert results["svae"]["metrics"]["test/kl"] >= 0  # the closed-form KL (pvae's is one Monte Carlo draw)
