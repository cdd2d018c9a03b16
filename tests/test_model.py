"""Model parts against closed forms and reference implementations; the module API on every variant x arch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from aelab.bottlenecks.gaussian import DiagonalGaussian
from aelab.core.build import build
from aelab.core.errors import ConfigError
from aelab.losses.likelihood import Bernoulli as BernoulliLik
from aelab.losses.likelihood import Gaussian as GaussianLik
from aelab.nets.conv import ConvDecoder, ConvEncoder
from helpers import compose_cfg

VARIANTS = [(m, a) for m in ("ae", "vae", "linear_ae") for a in ("mlp", "conv") if not (m == "linear_ae" and a == "conv")]


def test_gaussian_kl_matches_torch_distributions() -> None:
    torch.manual_seed(0)
    bottleneck = DiagonalGaussian(in_features=12, latent_dim=5)
    h = torch.randn(7, 12)
    mu, logvar = bottleneck.posterior(h)
    q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    torch.testing.assert_close(bottleneck(h).terms["kl"], kl_divergence(q, p))


def test_gaussian_sample_has_posterior_moments() -> None:
    torch.manual_seed(0)
    bottleneck = DiagonalGaussian(in_features=3, latent_dim=2)
    h = torch.randn(1, 3).expand(20000, 3)
    mu, logvar = bottleneck.posterior(h[:1])
    z = bottleneck(h).z
    torch.testing.assert_close(z.mean(0), mu[0], atol=0.03, rtol=0)
    torch.testing.assert_close(z.var(0), logvar.exp()[0], atol=0.03, rtol=0.05)


def test_likelihoods_match_torch_distributions() -> None:
    torch.manual_seed(0)
    out, target = torch.randn(4, 1, 3, 3), torch.rand(4, 1, 3, 3)
    gauss = -Normal(out, 0.3).log_prob(target).flatten(1).sum(1)
    torch.testing.assert_close(GaussianLik(sigma=0.3).nll(out, target), gauss)
    binary = (target > 0.5).float()
    bern = -Bernoulli(logits=out).log_prob(binary).flatten(1).sum(1)
    torch.testing.assert_close(BernoulliLik().nll(out, binary), bern)
    torch.testing.assert_close(BernoulliLik().mean(out), torch.sigmoid(out))


@pytest.mark.parametrize("shape", [[1, 8, 8], [1, 28, 28], [3, 32, 32], [2, 7, 9]])
def test_conv_round_trip_restores_any_shape(shape: list[int]) -> None:
    enc = ConvEncoder(shape, channels=[4, 8], activation=torch.nn.ReLU)
    dec = ConvDecoder(shape, latent_dim=3, channels=[4, 8], activation=torch.nn.ReLU)
    x = torch.rand(2, *shape)
    assert enc(x).shape == (2, enc.out_dim)
    assert dec(torch.randn(2, 3)).shape == (2, *shape)


def test_conv_refuses_too_many_downsamplings() -> None:
    with pytest.raises(ConfigError, match="too many for an input of size 8"):
        ConvEncoder([1, 8, 8], channels=[4, 4, 4, 4, 4], activation=torch.nn.ReLU)


@pytest.mark.parametrize(("variant", "arch"), VARIANTS)
def test_module_api_shapes(variant: str, arch: str, tmp_path: Path) -> None:
    cfg = compose_cfg(["data=digits", f"model={variant}", f"model/arch={arch}", "model.latent_dim=5"], tmp_path)
    model = build(cfg.model).eval()
    x = torch.rand(6, 1, 8, 8)
    assert model.encode(x).shape == (6, 5)
    assert model.decode(torch.randn(6, 5)).shape == (6, 1, 8, 8)
    assert model.reconstruct(x).shape == (6, 1, 8, 8)
    assert model.interpolate(x[:2], x[2:4], steps=4).shape == (2, 4, 1, 8, 8)
    ends = model.interpolate(x[:2], x[2:4], steps=4)
    torch.testing.assert_close(ends[:, 0], model.reconstruct(x[:2]))
    torch.testing.assert_close(ends[:, -1], model.reconstruct(x[2:4]))
    if variant != "vae":  # no prior: sampling needs the ex-post density fitted on codes first
        with pytest.raises(RuntimeError, match="not fitted"):
            model.sample(3)
        model.fit_density(model.encode(torch.rand(50, 1, 8, 8)))
    assert model.sample(3).shape == (3, 1, 8, 8)


def test_density_is_not_fitted_again_on_the_same_codes(tmp_path: Path) -> None:
    model = build(compose_cfg(["data=digits", "model=ae", "model/arch=mlp"], tmp_path).model)
    fitted, fit = [], model.density.fit
    model.density.fit = lambda z: fitted.append(float(z.sum())) or fit(z)
    z = torch.randn(200, 16, generator=torch.Generator().manual_seed(0))
    for codes in (z, z.clone(), z + 1, z + 1, z):
        model.fit_density(codes)
    assert fitted == pytest.approx([float(z.sum()), float((z + 1).sum()), float(z.sum())])
    assert model.sample(3).shape == (3, 1, 8, 8)


def test_loss_weight_naming_no_term_is_a_config_error(tmp_path: Path) -> None:
    cfg = compose_cfg(["data=digits", "model=ae", "+model.loss_weights.kl=1.0"], tmp_path)
    with pytest.raises(ConfigError, match=r"names \['kl'\].*the terms are none"):
        build(cfg.model)


@pytest.mark.parametrize("bad", ["0", "-3", "2.5"])
def test_latent_dim_must_be_positive(bad: str, tmp_path: Path) -> None:
    cfg = compose_cfg(["data=digits", "model=ae", "model/arch=mlp", f"model.latent_dim={bad}"], tmp_path)
    with pytest.raises(ConfigError, match="positive integer"):
        build(cfg.model)
