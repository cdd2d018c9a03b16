"""The Ladder VAE against known answers: the precision-weighted merge is the normalised product of two Gaussians;
one layer is the VAE (closed-form KL, which the joint importance weights average to); with two layers the
emitted KL and the joint log-ratio estimate the same KL; the IW likelihood is finite and above the ELBO.
(ladder_vae trains an epoch through the CLI in tests/test_hamiltonian.py's slow test, beside hvae.)"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch.distributions import Normal

from aelab.bottlenecks.ladder import Ladder, merge
from aelab.core.build import build
from helpers import compose_cfg


def test_the_merge_is_the_normalised_product_of_the_two_gaussians() -> None:
    gen = torch.Generator().manual_seed(0)
    mu_a, mu_b = torch.randn(2, 4, generator=gen, dtype=torch.float64)
    var_a, var_b = 0.1 + torch.rand(2, 4, generator=gen, dtype=torch.float64)
    mu, var = merge(mu_a, var_a, mu_b, var_b)
    z = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    # N(z; a) N(z; b) = N(mu_a; mu_b, var_a + var_b) N(z; mu, var) at every z
    product = Normal(mu_a, var_a.sqrt()).log_prob(z) + Normal(mu_b, var_b.sqrt()).log_prob(z)
    normaliser = Normal(mu_b, (var_a + var_b).sqrt()).log_prob(mu_a)
    torch.testing.assert_close(product, normaliser + Normal(mu, var.sqrt()).log_prob(z), atol=1e-12, rtol=0)


def test_one_layer_is_the_vae_closed_form_kl_which_the_joint_weights_average_to() -> None:
    torch.manual_seed(0)
    ladder = Ladder(5, 3, dims=[])
    h = torch.randn(4, 5)
    with torch.no_grad():
        kl = ladder(h).terms["kl"]
        mu, var = ladder.bottom_up(h)[0]
        _, log_ratio = ladder.importance_samples(h, 20000)  # (k, B): log p(z) - log q(z|x)
    torch.testing.assert_close(kl, 0.5 * (mu.pow(2) + var - 1 - var.log()).sum(-1))
    se = log_ratio.std(0) / math.sqrt(len(log_ratio))
    assert ((-log_ratio.mean(0) - kl).abs() < 4 * se).all(), (kl, -log_ratio.mean(0), se)


def test_with_two_layers_the_emitted_kl_and_the_joint_log_ratio_estimate_the_same_kl() -> None:
    torch.manual_seed(0)
    ladder = Ladder(5, 3, dims=[2], hidden=16)
    h = torch.randn(3, 5)
    with torch.no_grad():
        kls = ladder(h.repeat(4000, 1)).terms["kl"].view(4000, -1)  # (S*B,) -> (S, B): closed form given z_2, MC over z_2
        _, log_ratio = ladder.importance_samples(h, 4000)
    difference = kls.mean(0) + log_ratio.mean(0)
    se = (kls.var(0) / len(kls) + log_ratio.var(0) / len(log_ratio)).sqrt()
    assert (difference.abs() < 4 * se).all() and (kls.mean(0) > 0).all(), (difference, se)


def test_the_iw_likelihood_is_finite_and_above_the_elbo(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = compose_cfg(["data=digits", "model=ladder_vae", "model/arch=mlp", "model.latent_dim=8",
                       "model.bottleneck.dims=[4,2]"], tmp_path)
    model = build(cfg.model)
    data = build(cfg.data)
    data.setup()
    batch = data.fixed_batch("train", 32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(10):  # away from the initial weights
        opt.zero_grad()
        model.compute_loss(batch, "train")[0].backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        x = batch["x"].repeat(20, 1, 1, 1)  # (B, ...) -> (20*B, ...): 20 ELBO draws per example
        elbo = -model.anomaly_score(x, x).view(20, -1).mean(1)  # (20*B,) -> (20,) batch means
        iw = model.iw_log_likelihood(batch["x"], batch["target"], k=64)
    assert torch.isfinite(iw).all()
    assert float(iw.mean()) > float(elbo.mean()) + 3 * float(elbo.std()) / math.sqrt(len(elbo)), (iw.mean(), elbo)
