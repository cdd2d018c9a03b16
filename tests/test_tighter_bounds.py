"""CIWAE, MIWAE and PIWAE (Rainforth et al. 2018) against their definitions: the bounds on fixed log weights and on
a real model batch, PIWAE's decoder and encoder gradients against the two objectives' own autograd gradients, and
the three variants trained one short epoch through the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from aelab.bottlenecks.importance import ImportanceWeighted
from aelab.bottlenecks.tighter import CombinationIW, MultiplyIW
from aelab.core.build import build
from aelab.core.errors import ConfigError
from helpers import compose_cfg, train_through_cli

B = 6


def fixed_terms(codes: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-code recon (codes*B,) and kl spread over tens of nats, so the bounds differ clearly."""
    gen = torch.Generator().manual_seed(0)
    recon = 20 + 15 * torch.rand(codes * B, generator=gen, dtype=torch.float64)
    return recon, {"kl": 5 * torch.randn(codes * B, generator=gen, dtype=torch.float64)}


def by_hand_iwae(log_w: torch.Tensor) -> torch.Tensor:
    """log (1/K) sum_k exp(log w_k) over dim 0 of (K, B), in float64 without logsumexp."""
    shift = log_w.max(0).values
    return shift + torch.log(torch.exp(log_w - shift).mean(0))


def test_ciwae_ends_are_iwae_and_the_k_sample_elbo_and_its_middle_is_their_mix() -> None:
    recon, terms = fixed_terms(5)
    log_w = -(recon + terms["kl"]).view(5, B)
    iwae = ImportanceWeighted(4, 2, samples=5).objective(recon, terms, {"kl": 1.0})
    torch.testing.assert_close(iwae, -by_hand_iwae(log_w))
    ends = [CombinationIW(4, 2, samples=5, beta=beta).objective(recon, terms, {"kl": 1.0}) for beta in (0.0, 1.0, 0.3)]
    torch.testing.assert_close(ends[0], iwae)
    torch.testing.assert_close(ends[1], -log_w.mean(0))
    torch.testing.assert_close(ends[2], 0.3 * ends[1] + 0.7 * ends[0])
    assert (ends[1] - ends[0]).min() > 0.1  # the ELBO is looser than IWAE here: the ends are told apart
    with pytest.raises(ConfigError, match=r"beta must be in \[0, 1\]"):
        CombinationIW(4, 2, beta=1.5)


def test_miwae_is_the_mean_of_its_groups_iwae_and_one_group_is_iwae() -> None:
    recon, terms = fixed_terms(12)
    log_w = -(recon + terms["kl"]).view(3, 4, B)  # codes sample-major: code m * K + k of every example
    expected = torch.stack([by_hand_iwae(log_w[m]) for m in range(3)]).mean(0)
    miwae = MultiplyIW(4, 2, samples=4, groups=3).objective(recon, terms, {"kl": 1.0})
    torch.testing.assert_close(miwae, -expected)
    iwae_12 = ImportanceWeighted(4, 2, samples=12).objective(recon, terms, {"kl": 1.0})
    assert (miwae - iwae_12).min() > 0.01  # IWAE of all 12 codes is tighter than the mean of three IWAE_4
    one_group = MultiplyIW(4, 2, samples=12, groups=1).objective(recon, terms, {"kl": 1.0})
    torch.testing.assert_close(one_group, iwae_12)


def model_and_batch(variant: str, tmp_path: Path, overrides: tuple[str, ...] = ()):
    cfg = compose_cfg(["data=digits", f"model={variant}", "model/arch=mlp", "model.latent_dim=4", *overrides], tmp_path)
    data = build(cfg.data)
    data.setup()
    torch.manual_seed(0)
    return build(cfg.model).double(), {k: v.double() for k, v in data.fixed_batch("train", 32).items() if k != "y"}


@pytest.mark.parametrize("variant", ["ciwae", "miwae"])
def test_the_module_trains_on_the_bound_and_logs_the_elbo_averaged_over_the_codes(variant: str, tmp_path: Path) -> None:
    """On a real batch: loss = -mean of the bound computed by hand from the same codes' log weights; elbo = their mean."""
    model, batch = model_and_batch(variant, tmp_path)
    torch.manual_seed(1)
    loss, logs = model.compute_loss(batch, "train")
    torch.manual_seed(1)
    recon, b = model.reconstruction_nll(batch["x"], batch["target"])
    bn = model.bottleneck
    log_w = -(recon + b.terms["kl"]).detach()
    if variant == "ciwae":
        log_w = log_w.view(bn.samples, -1)
        bound = bn.beta * log_w.mean(0) + (1 - bn.beta) * by_hand_iwae(log_w)
    else:
        log_w = log_w.view(bn.groups, bn.group_size, -1)
        bound = torch.stack([by_hand_iwae(group) for group in log_w]).mean(0)
    torch.testing.assert_close(loss.detach(), -bound.mean())
    torch.testing.assert_close(logs["elbo"].detach(), log_w.mean())
    torch.testing.assert_close(logs["kl"].detach(), b.terms["kl"].detach().mean())


def grads(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, params, retain_graph=True))


def test_piwae_gives_the_decoder_iwae_mk_and_the_encoder_miwae_gradients(tmp_path: Path) -> None:
    """One backward of PIWAE's loss against torch.autograd.grad of -IWAE_{MK} (decoder) and -MIWAE_{M,K} (encoder
    and posterior projection) computed on the same codes by a MIWAE model with the same weights."""
    piwae, batch = model_and_batch("piwae", tmp_path, ("model.bottleneck.groups=3", "model.bottleneck.samples=4"))
    miwae, _ = model_and_batch("miwae", tmp_path, ("model.bottleneck.groups=3", "model.bottleneck.samples=4"))
    miwae.load_state_dict(piwae.state_dict())
    torch.manual_seed(1)
    loss = piwae.compute_loss(batch, "train")[0]
    piwae.zero_grad()
    loss.backward()
    torch.manual_seed(1)  # the same 12 codes per example
    recon, b = miwae.reconstruction_nll(batch["x"], batch["target"])
    log_w = -(recon + b.terms["kl"]).view(12, -1)  # (M*K, B)
    iwae_mk = torch.logsumexp(log_w, 0) - math.log(12)
    miwae_bound = -miwae.bottleneck.objective(recon, b.terms, {"kl": 1.0})
    torch.testing.assert_close(loss.detach(), -iwae_mk.mean().detach())
    for part, bound, other in [("decoder", iwae_mk, miwae_bound), ("encoder", miwae_bound, iwae_mk),
                               ("bottleneck", miwae_bound, iwae_mk)]:
        params = list(getattr(miwae, part).parameters())
        expected, wrong = grads(-bound.mean(), params), grads(-other.mean(), params)
        got = [p.grad for p in getattr(piwae, part).parameters()]
        for g, e in zip(got, expected):
            torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-12)
        gap = max(float((w - e).abs().max()) for w, e in zip(wrong, expected))
        assert gap > 1e-4 * max(float(e.abs().max()) for e in expected), part  # the two bounds' gradients differ


def test_piwae_refuses_a_backward_whose_objective_was_not_computed(tmp_path: Path) -> None:
    piwae, batch = model_and_batch("piwae", tmp_path)
    recon, _ = piwae.reconstruction_nll(batch["x"], batch["target"])
    with pytest.raises(RuntimeError, match="objective was never computed"):
        recon.sum().backward()


NAMES = {"ciwae": "ciwae_k5_beta0.5", "miwae": "miwae_m4_k4", "piwae": "piwae_m4_k4"}  # the bound in the name
VARIANTS = tuple(NAMES)


@pytest.mark.slow
def test_each_bound_trains_an_epoch_through_the_cli_and_records_a_finite_elbo(tmp_path: Path) -> None:
    """One short epoch of each (processes in parallel): completed, named by its bound, finite ELBO and kl."""
    results = train_through_cli({variant: [] for variant in VARIANTS}, tmp_path)
    for variant, result in results.items():
        assert result["run"]["model"] == NAMES[variant]
        for key in [f"{stage}/{name}" for stage in ("train", "test") for name in ("loss", "elbo", "kl", "recon")]:
            assert math.isfinite(result["metrics"][key]), (variant, key)
        assert result["metrics"]["test/elbo"] <= -result["metrics"]["test/loss"] + 1e-5  # every bound >= its ELBO


def test_piwae_gradients_stay_finite_when_a_groups_weight_underflows() -> None:
    """A group 200 nats behind the other: its codes' IWAE weights underflow in float32, so their decoder gradient is
    0 and their MIWAE scale e^200 would be inf (0 * inf = NaN, which diverged a Fashion-MNIST run); they pass 0."""
    from aelab.bottlenecks.tighter import PartiallyIW

    torch.manual_seed(0)
    bottleneck = PartiallyIW(in_features=6, latent_dim=3, samples=2, groups=2)
    h = torch.randn(5, 6, requires_grad=True)
    out = bottleneck(h)
    offsets = torch.tensor([0.0, 0.0, 200.0, 200.0]).repeat_interleave(5)  # codes of group 2 (sample-major) far worse
    recon = offsets + 0.1 * out.z.pow(2).sum(-1)
    bottleneck.objective(recon, out.terms, {"kl": 1.0}).sum().backward()
    assert torch.isfinite(h.grad).all() and h.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in bottleneck.parameters() if p.grad is not None)
