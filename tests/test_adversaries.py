"""The adversary part (aelab.losses.adversary): FactorVAE's density-ratio estimate of total correlation against its
closed form, the discriminator trained in turn with the autoencoder (checkpointed, resumed, under DDP)."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import pytest
import torch

from aelab.bottlenecks.base import BottleneckOutput
from aelab.core.build import build
from aelab.losses.adversary import CodesVsPermuted, permute_dims
from aelab.nets.mlp import MLPEncoder
from helpers import FAST, compose_cfg, read_result, run_cli


def test_permuting_dims_keeps_each_marginal_and_breaks_the_dependence() -> None:
    torch.manual_seed(0)
    x = torch.randn(4000, 1)
    z = torch.cat([x, x + 0.1 * torch.randn_like(x)], dim=1)  # correlation ~0.995
    p = permute_dims(z)
    assert torch.equal(p.sort(0).values, z.sort(0).values)  # the same values in every column
    assert abs(float(torch.corrcoef(p.T)[0, 1])) < 0.05


@pytest.mark.parametrize("tc", [0.5, 1.0, 2.0])
def test_factor_vae_discriminator_estimates_the_total_correlation_of_a_correlated_gaussian(tc: float) -> None:
    """TC of a bivariate normal with correlation rho = -0.5 log det(corr) = -0.5 log(1 - rho^2)."""
    torch.manual_seed(0)
    rho = math.sqrt(1.0 - math.exp(-2.0 * tc))
    gaussian = torch.distributions.MultivariateNormal(torch.zeros(2), torch.tensor([[1.0, rho], [rho, 1.0]]))
    d = CodesVsPermuted(MLPEncoder([2], [64, 64], partial(torch.nn.LeakyReLU, 0.2)), partial(torch.optim.Adam, lr=1e-3))
    optimizer = d.optimizer_factory(params=d.parameters())
    for _ in range(1500):
        loss = d.discriminator_loss(None, None, None, BottleneckOutput(z=gaussian.sample((512,))))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        estimate = float(d.generator_terms(None, None, None, BottleneckOutput(z=gaussian.sample((20000,))))["tc"].mean())
    assert estimate == pytest.approx(tc, rel=0.15)


def test_the_autoencoders_optimizer_leaves_the_discriminator_to_its_own() -> None:
    model = build(compose_cfg(["data=digits", "model=factor_vae", "model.latent_dim=4"]).model)
    autoencoder, discriminator = model.configure_optimizers()
    own = {id(p) for group in discriminator.param_groups for p in group["params"]}
    assert own == {id(p) for p in model.adversary.parameters()}
    assert not own & {id(p) for group in autoencoder.param_groups for p in group["params"]}
    assert discriminator.defaults["betas"] == (0.5, 0.9)  # Kim & Mnih's, from the YAML


def test_an_adversary_refuses_a_scheduler_in_one_line() -> None:
    from aelab.core.errors import ConfigError

    cfg = compose_cfg(["data=digits", "model=aae", "+model.scheduler._target_=torch.optim.lr_scheduler.StepLR",
                       "+model.scheduler._partial_=true", "+model.scheduler.step_size=1"])
    with pytest.raises(ConfigError, match="manual optimisation"):
        build(cfg.model)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["aae", "factor_vae", "vae_gan"])
def test_adversarial_variant_trains_through_the_cli_with_its_discriminator_in_the_checkpoint(variant: str,
                                                                                           tmp_path: Path) -> None:
    out = run_cli("aelab-train", [*FAST, f"model={variant}", "model.latent_dim=4", "trainer.max_epochs=1",
                                  "logger=none", "eval=none", f"hydra.run.dir={tmp_path}"])
    assert out.returncode == 0, out.stderr[-3000:]
    record = read_result(tmp_path)
    terms = build(compose_cfg(["data=digits", f"model={variant}", "model.latent_dim=4"]).model).adversary.terms
    assert all(math.isfinite(record["metrics"][f"train/{t}"]) for t in (*terms, "adversary"))
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert len(ckpt["optimizer_states"]) == 2 and any(k.startswith("adversary.") for k in ckpt["state_dict"])
    data = build(compose_cfg(["data=digits"]).data)
    data.setup()
    # one epoch of autoencoder updates: the discriminator's steps do not count as optimizer steps
    assert ckpt["global_step"] == math.ceil(len(data.train_set) / data.batch_size)


@pytest.mark.slow
def test_factor_vae_trains_under_ddp_with_one_discriminator(tmp_path: Path) -> None:
    out = run_cli("aelab-train", [*FAST, "model=factor_vae", "trainer=ddp_cpu", "model.latent_dim=4",
                                  "trainer.max_epochs=1", "logger=none", "eval=none", f"hydra.run.dir={tmp_path}"])
    assert out.returncode == 0, out.stderr[-3000:]
    record = read_result(tmp_path)
    assert record["state"] == "completed" and math.isfinite(record["metrics"]["train/adversary"])
