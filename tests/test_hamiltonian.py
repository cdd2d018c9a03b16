"""The Hamiltonian VAE against known answers: with no step it is the VAE's one-sample ELBO; leapfrog is reversible
and volume preserving and the tempered flow's Jacobian is beta_0^{d/2}; on a linear-Gaussian model (p(x) in closed
form) the trained bound lies below log p(x) and above the best mean-field ELBO, and its joint importance weights
recover log p(x). Then the module's log_joint hook: refine runs in training and under no_grad, costs other
bottlenecks no decoder pass; and hvae and ladder_vae train an epoch through the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from aelab.bottlenecks.hamiltonian import Hamiltonian, leapfrog
from aelab.core.build import build
from helpers import compose_cfg, train_through_cli

# a linear-Gaussian model p(z) = N(0, I_2), p(x|z) = N(W z + b, S2 I_3): posterior correlation -0.87
W = torch.tensor([[1.0, 0.9], [0.9, 1.0], [0.5, 0.45]])
B, S2 = torch.tensor([0.3, -0.2, 0.1]), 0.25


def log_lik(z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x|z) (N,) of the linear-Gaussian model."""
    return Normal(z @ W.T + B, math.sqrt(S2)).log_prob(x).sum(-1)


def bound(m: Hamiltonian, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The HVAE bound (N,) of x (N, 3) with the encoder h = x, and z_0, z_K."""
    out = m(x)
    refined = m.refine(x, out, lambda z: log_lik(z, x) + m.prior_log_prob(z))
    return log_lik(refined.z, x) - refined.terms["kl"], out.z, refined.z


@pytest.mark.parametrize("steps", [0, 3])
def test_without_a_step_the_bound_is_the_vae_one_sample_elbo(steps: int) -> None:
    torch.manual_seed(0)
    m = Hamiltonian(3, 2, steps=steps)
    with torch.no_grad():
        m.log_eps.fill_(-math.inf)  # eps = 0: z_K = z_0, rho_K = gamma
    x = torch.randn(16, 3)
    value, z0, zk = bound(m, x)
    mu, logvar = m.posterior(x)
    elbo = log_lik(z0, x) + Normal(0.0, 1.0).log_prob(z0).sum(-1) - Normal(mu, (0.5 * logvar).exp()).log_prob(z0).sum(-1)
    assert torch.equal(zk, z0)
    torch.testing.assert_close(value, elbo, atol=1e-5, rtol=0)


def toy_grad(z: torch.Tensor) -> torch.Tensor:
    """grad of the non-quadratic log density -sum z^4/4 - z_1 z_2."""
    return -z.pow(3) - z.flip(-1)


def test_leapfrog_is_reversible_and_preserves_volume() -> None:
    gen = torch.Generator().manual_seed(0)
    z0, rho0 = torch.randn(5, 2, generator=gen, dtype=torch.float64), torch.randn(5, 2, generator=gen, dtype=torch.float64)
    eps = torch.tensor([0.1, 0.25], dtype=torch.float64)
    z, rho = z0, rho0
    for _ in range(10):
        z, rho, _ = leapfrog(z, rho, eps, toy_grad)
    assert (z - z0).abs().max() > 0.1  # it moved
    rho = -rho
    for _ in range(10):
        z, rho, _ = leapfrog(z, rho, eps, toy_grad)
    torch.testing.assert_close((z, -rho), (z0, rho0), atol=1e-10, rtol=0)

    def step(state: torch.Tensor) -> torch.Tensor:
        z, rho, _ = leapfrog(state[:2], state[2:], eps, toy_grad)
        return torch.cat([z, rho])

    jacobian = torch.autograd.functional.jacobian(step, torch.cat([z0[0], rho0[0]]))
    assert abs(float(torch.linalg.det(jacobian)) - 1.0) < 1e-12


def test_the_tempered_flow_scales_volume_by_beta0_to_the_d_over_2() -> None:
    """The Jacobian the bound relies on (q_K = q_0 beta_0^{-d/2}), by autograd through 3 steps on the toy density."""
    m = Hamiltonian(3, 2, steps=3, step_size=0.2, beta0=0.3).double()

    def flow(state: torch.Tensor) -> torch.Tensor:
        z, rho = m.flow(state[None, :2], state[None, 2:], lambda c: -0.25 * c.pow(4).sum(-1) - c.prod(-1))
        return torch.cat([z[0], rho[0]])

    state = torch.tensor([0.5, -1.0, 0.3, 0.8], dtype=torch.float64)
    det = float(torch.linalg.det(torch.autograd.functional.jacobian(flow, state)))
    beta0 = float(torch.sigmoid(m.beta0_logit.detach()))  # 0.3 up to the float32 rounding of its logit
    assert abs(det - beta0 ** (2 / 2)) < 1e-12 and abs(beta0 - 0.3) < 1e-7, det


def test_on_a_linear_gaussian_model_the_trained_bound_beats_any_mean_field_elbo_and_stays_below_log_px() -> None:
    torch.manual_seed(0)
    p_x = MultivariateNormal(B, W @ W.T + S2 * torch.eye(3))
    x = p_x.sample((32,))
    log_px = float(p_x.log_prob(x).mean())
    precision = torch.eye(2) + W.T @ W / S2  # of the posterior; the best diagonal q has precisions diag(precision)
    best_mean_field = log_px - 0.5 * float(precision.diagonal().log().sum() - torch.logdet(precision))  # gap 0.77
    m = Hamiltonian(3, 2, steps=3, step_size=0.1)
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    for _ in range(400):
        opt.zero_grad()
        (-bound(m, x)[0].mean()).backward()
        opt.step()
    with torch.no_grad():
        values = bound(m, x.repeat(500, 1))[0].view(500, 32).mean(1)  # 500 draws of the batch mean
        z, log_ratio = m.refine_samples(*m.draw(*m.posterior(x), 2000), lambda c: log_lik(c, x.repeat(2000, 1))
                                        + m.prior_log_prob(c))  # (2000, 32, 2), (2000, 32)
    se = float(values.std()) / math.sqrt(len(values))
    mean = float(values.mean())  # measured: -4.468 (se 0.008) vs log p(x) -3.754 and the mean-field best -4.522
    assert best_mean_field + 3 * se < mean < log_px, (best_mean_field, mean, log_px)
    # joint (z, rho) weights are unbiased for p(x): the IW estimate closes the gap (measured -3.796; a Jacobian
    # term off by d/2 log beta_0 would shift it by 0.5 nats)
    iw = torch.logsumexp(log_lik(z.flatten(0, 1), x.repeat(2000, 1)).view(2000, 32) + log_ratio, 0) - math.log(2000)
    assert mean < float(iw.mean()) and abs(float(iw.mean()) - log_px) < 0.15, (float(iw.mean()), log_px)


def module(variant: str, tmp_path: Path):
    torch.manual_seed(0)
    return build(compose_cfg(["data=digits", f"model={variant}", "model/arch=mlp", "model.latent_dim=8"], tmp_path).model)


def test_the_hook_refines_in_training_and_under_no_grad_and_costs_other_bottlenecks_nothing(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(16, 1, 8, 8, generator=gen) > 0.5).float()
    batch = {"x": x, "target": x}
    calls = {"decoder": 0}
    for variant, passes in (("vae", 1), ("hvae", 1 + 4)):  # hvae: the K + 1 = 4 gradients of log p(x, z), then recon
        model = module(variant, tmp_path / variant)
        model.decoder.register_forward_hook(lambda *_: calls.__setitem__("decoder", calls["decoder"] + 1))
        calls["decoder"] = 0
        loss, logs = model.compute_loss(batch, "train")
        assert calls["decoder"] == passes, (variant, calls)
        loss.backward()
    assert model.bottleneck.log_eps.grad.abs().sum() > 0 and model.bottleneck.beta0_logit.grad.abs() > 0
    torch.testing.assert_close(logs["elbo"], -(logs["recon"] + logs["kl"]))
    assert not torch.allclose(logs["kl"], logs["kl_q0"])  # the refined remainder, not the VAE's closed-form KL
    model.eval()
    with torch.no_grad():
        loss, logs = model.compute_loss(batch, "val")
        score, iw = model.anomaly_score(x, x), model.iw_log_likelihood(x, x, k=4)
    assert not loss.requires_grad and torch.isfinite(score).all() and torch.isfinite(iw).all()
    z = torch.randn(5, 8)
    log_joint = -model.nll(model.decoder(z), x[:5]) + Normal(0.0, 1.0).log_prob(z).sum(-1)
    torch.testing.assert_close(model.log_joint(z, x[:5]), log_joint)


@pytest.mark.slow
def test_hvae_and_ladder_vae_train_an_epoch_through_the_cli_and_log_their_bounds(tmp_path: Path) -> None:
    """One short epoch of each (processes in parallel): the run completes, its terms are finite, loss = -elbo."""
    variants = {"hvae": ("kl", "kl_q0", "beta0", "step_size"), "ladder_vae": ("kl", "kl_1", "kl_2")}

    results = train_through_cli({variant: [] for variant in variants}, tmp_path)
    for variant, names in variants.items():
        metrics = results[variant]["metrics"]
        assert all(math.isfinite(metrics[f"{stage}/{k}"]) for stage in ("train", "test") for k in (*names, "elbo"))
        assert abs(metrics["test/elbo"] + metrics["test/loss"]) < 1e-4 * abs(metrics["test/loss"])  # weights 1
