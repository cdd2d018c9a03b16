"""Loss terms and bounds against closed forms: IWAE vs ELBO, MMD, Jacobian penalties, schedules."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from torch.distributions import Normal

from aelab.bottlenecks.base import BottleneckOutput
from aelab.bottlenecks.gaussian import DiagonalGaussian
from aelab.bottlenecks.importance import ImportanceWeighted
from aelab.bottlenecks.wasserstein import imq_mmd
from aelab.callbacks.schedules import linear
from aelab.commands.train import train
from aelab.core.build import build
from aelab.losses.penalties import DecoderJacobian, DecoderL2, EncoderJacobian
from helpers import FAST, compose_cfg


def test_iwae_with_one_sample_is_the_single_sample_elbo() -> None:
    torch.manual_seed(0)
    iw = ImportanceWeighted(in_features=6, latent_dim=3, samples=1)
    h, recon = torch.randn(4, 6), torch.rand(4) * 10
    torch.manual_seed(1)
    b = iw(h)
    mu, logvar = iw.posterior(h)
    log_q = Normal(mu, torch.exp(0.5 * logvar)).log_prob(b.z).sum(-1)
    log_p = Normal(0.0, 1.0).log_prob(b.z).sum(-1)
    elbo = -recon + log_p - log_q  # log p(x|z) + log p(z) - log q(z|x) with log p(x|z) = -recon
    torch.testing.assert_close(iw.objective(recon, b.terms, {"kl": 1.0}), -elbo)


def test_iwae_monte_carlo_kl_averages_to_the_closed_form() -> None:
    torch.manual_seed(0)
    iw = ImportanceWeighted(in_features=6, latent_dim=3, samples=20000)
    closed = DiagonalGaussian(in_features=6, latent_dim=3)
    closed.load_state_dict(iw.state_dict())
    h = torch.randn(2, 6)
    mc = iw(h).terms["kl"].view(20000, 2).mean(0)
    torch.testing.assert_close(mc, closed(h).terms["kl"], atol=0.03, rtol=0.02)


def test_more_importance_samples_give_a_tighter_bound() -> None:
    torch.manual_seed(0)
    h, x = torch.randn(64, 6), torch.randn(64, 3)
    torch.manual_seed(3)
    state = ImportanceWeighted(6, 3, 1).state_dict()
    bounds = []
    for k in (1, 10, 100):
        torch.manual_seed(5)
        iw = ImportanceWeighted(6, 3, k)
        iw.load_state_dict(state)
        b = iw(h)
        recon = 0.5 * (x.repeat(k, 1) - b.z).pow(2).sum(1)
        bounds.append(float(-iw.objective(recon, b.terms, {"kl": 1.0}).mean().detach()))
    assert bounds[0] < bounds[1] < bounds[2]


def test_mmd_is_near_zero_for_the_same_distribution_and_large_otherwise() -> None:
    torch.manual_seed(0)
    scales = (1.0,)
    same = imq_mmd(torch.randn(500, 4), torch.randn(500, 4), scales)
    shifted = imq_mmd(torch.randn(500, 4) + 2.0, torch.randn(500, 4), scales)
    assert abs(float(same)) < 0.01 and float(shifted) > 0.2


def linear_model(tmp_path: Path):
    cfg = compose_cfg(["data=digits", "model=linear_ae", "model.latent_dim=3"], tmp_path)
    return build(cfg.model)


def test_contractive_penalty_of_a_linear_encoder_is_the_frobenius_norm(tmp_path: Path) -> None:
    model = linear_model(tmp_path)
    x = torch.rand(5, 1, 8, 8)
    expected = model.bottleneck.proj.weight.pow(2).sum()  # J = W for z = W x + b
    exact = EncoderJacobian(projections=0)(model, x, None)
    torch.testing.assert_close(exact, expected.expand(5))
    torch.manual_seed(0)
    estimate = EncoderJacobian(projections=2000)(model, x, None)
    torch.testing.assert_close(estimate, expected.expand(5), rtol=0.1, atol=0)


def test_decoder_penalties_of_a_linear_decoder(tmp_path: Path) -> None:
    model = linear_model(tmp_path)
    weight = model.decoder.net[0].weight  # x_hat = W z + b
    b = BottleneckOutput(z=torch.randn(4, 3))
    torch.testing.assert_close(DecoderL2()(model, torch.zeros(4, 1, 8, 8), b), weight.pow(2).sum().expand(4))
    torch.manual_seed(0)
    gp = DecoderJacobian(projections=2000)(model, torch.zeros(4, 1, 8, 8), b)
    torch.testing.assert_close(gp, weight.pow(2).sum().expand(4), rtol=0.1, atol=0)


def test_linear_schedule() -> None:
    assert [linear(s, 0.0, 1.0, steps=10, delay=5) for s in (0, 5, 10, 15, 100)] == [0.0, 0.0, 0.5, 1.0, 1.0]


@pytest.mark.slow
def test_kl_warmup_runs_as_a_callback(tmp_path: Path) -> None:
    cfg = compose_cfg([*FAST, "model=vae_warmup", "model/arch=mlp", "model.schedules.0.steps=30", "logger=csv",
                       "trainer.max_epochs=2", "trainer.log_every_n_steps=1"], tmp_path)
    train(cfg)
    with open(tmp_path / "csv" / "metrics.csv") as f:
        weights = [float(r["schedule/kl"]) for r in csv.DictReader(f) if r.get("schedule/kl")]
    steps = len(weights)
    assert weights == pytest.approx([linear(s, 0.0, 1.0, 30) for s in range(steps)])
    assert weights[0] == 0.0 and weights[-1] == 1.0
