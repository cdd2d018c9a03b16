"""VQ, top-k and ResNet parts against brute-force references and closed forms; their YAMLs built and trained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aelab.bottlenecks.topk import TopK
from aelab.bottlenecks.vq import VectorQuantizer
from aelab.core.build import build
from aelab.core.errors import ConfigError
from aelab.nets.resnet import ResidualBlock, ResNetDecoder, ResNetEncoder
from helpers import compose_cfg


def identity_vq(codebook: list[list[float]], **kwargs: float) -> VectorQuantizer:
    """A 2-d VQ with one group whose projection is the identity and whose codebook is given."""
    vq = VectorQuantizer(in_features=2, latent_dim=2, num_codes=len(codebook), code_dim=2, **kwargs)
    with torch.no_grad():
        vq.proj.weight.copy_(torch.eye(2))
        vq.proj.bias.zero_()
        vq.codebook.copy_(torch.tensor(codebook))
        vq.embed_sum.copy_(vq.codebook)
    return vq


def test_vq_assigns_nearest_code_and_outputs_it() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(in_features=10, latent_dim=8, num_codes=16, code_dim=2).eval()
    h = torch.randn(32, 10)
    flat = vq.proj(h).detach().reshape(-1, 2)  # (B, 8) -> (B * 4, 2)
    expected = torch.cdist(flat, vq.codebook).argmin(dim=1).view(32, 4)  # (B * 4,) -> (B, 4)
    assert torch.equal(vq.codes(h), expected)
    out = vq(h)
    torch.testing.assert_close(out.z, vq.codebook[expected].reshape(32, 8))  # (B, 4, 2) -> (B, 8)
    torch.testing.assert_close(vq.embed(h), out.z)
    commit = (vq.proj(h) - out.z).pow(2).sum(dim=1)
    torch.testing.assert_close(out.terms["commit"], commit)


def test_vq_straight_through_gradient_reaches_projection() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(in_features=5, latent_dim=4, num_codes=8, code_dim=2).eval()
    h = torch.randn(6, 5)
    vq(h).z.sum().backward()  # dz/dz_e = I under the straight-through estimator
    torch.testing.assert_close(vq.proj.weight.grad, torch.ones(4, 1) * h.sum(0))
    torch.testing.assert_close(vq.proj.bias.grad, torch.full((4,), 6.0))


def test_vq_ema_update_follows_the_formula() -> None:
    vq = identity_vq([[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0]], decay=0.5, eps=1e-5, dead_threshold=0.0).train()
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]])  # codes 0, 0, 1; code 2 unused
    out = vq(h)
    torch.testing.assert_close(out.z, torch.tensor([[0.0, 0.0], [0.0, 0.0], [10.0, 10.0]]))  # pre-update codebook
    size = torch.tensor([0.5 * 1 + 0.5 * 2, 0.5 * 1 + 0.5 * 1, 0.5 * 1])
    sums = torch.tensor([[0.5, 0.5], [9.5, 9.5], [-5.0, 5.0]])  # 0.5 * m_old + 0.5 * sum of assigned
    n = size.sum()
    smoothed = (size + 1e-5) / (n + 3 * 1e-5) * n
    torch.testing.assert_close(vq.cluster_size, size)
    torch.testing.assert_close(vq.embed_sum, sums)
    torch.testing.assert_close(vq.codebook, sums / smoothed[:, None])
    # without smoothing code 0 = (0.5 * 1 * e_old + 0.5 * 2 * mean) / 1.5 = (1/3, 1/3): toward its mean (1/2, 1/2)
    torch.testing.assert_close(vq.codebook[0], torch.tensor([1 / 3, 1 / 3]), atol=1e-4, rtol=0)


def test_vq_eval_mode_leaves_codebook_alone() -> None:
    vq = identity_vq([[0.0, 0.0], [10.0, 10.0]], decay=0.5).eval()
    before = vq.codebook.clone()
    vq(torch.tensor([[1.0, 1.0], [9.0, 8.0]]))
    assert torch.equal(vq.codebook, before) and torch.equal(vq.cluster_size, torch.ones(2))


def test_vq_restarts_dead_code_onto_batch_vector() -> None:
    torch.manual_seed(0)
    vq = identity_vq([[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0]], decay=0.5, dead_threshold=0.6).train()
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]])
    out = vq(h)  # code 2 decays to N = 0.5 < 0.6
    assert out.stats["dead_codes"].item() == pytest.approx(1 / 3)
    assert any(torch.equal(vq.codebook[2], row) for row in h)
    assert vq.cluster_size[2].item() == 1.0 and torch.equal(vq.embed_sum[2], vq.codebook[2])
    assert vq.cluster_size[:2].tolist() == [1.5, 1.0]  # live codes untouched by the restart


def test_vq_perplexity_counts_uniformly_used_codes() -> None:
    codebook = [[0.0, 0.0], [5.0, 0.0], [0.0, 5.0], [5.0, 5.0], [-5.0, -5.0]]
    vq = identity_vq(codebook).eval()
    h = torch.tensor(codebook[:4] * 3)  # 4 codes used 3 times each, the 5th unused
    assert vq(h).stats["perplexity"].item() == pytest.approx(4.0)
    assert vq(torch.tensor(codebook[:1] * 5)).stats["perplexity"].item() == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs", [{"latent_dim": 6, "code_dim": 4}, {"latent_dim": 8, "num_codes": 0},
                                    {"latent_dim": 8, "code_dim": 0}])
def test_vq_refuses_bad_sizes(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError, match="vq:"):
        VectorQuantizer(in_features=4, **kwargs)


def test_topk_keeps_the_k_largest_pre_activations() -> None:
    torch.manual_seed(0)
    topk = TopK(in_features=10, latent_dim=12, k=3)
    h = torch.randn(20, 10)
    pre = topk.proj(h).detach()
    z = topk(h).z
    kept = z != 0
    assert kept.sum(dim=1).tolist() == [3] * 20
    torch.testing.assert_close(z[kept], pre[kept])
    smallest_kept = pre.masked_fill(~kept, float("inf")).min(dim=1).values
    assert (smallest_kept > pre.masked_fill(kept, -float("inf")).max(dim=1).values).all()
    assert topk(h).terms == {}
    z.sum().backward()  # bias gradient counts how often each unit was kept: none through dropped units
    torch.testing.assert_close(topk.proj.bias.grad, kept.sum(0).float())


@pytest.mark.parametrize("k", [0, 13, 2.5])
def test_topk_refuses_bad_k(k: int) -> None:
    with pytest.raises(ConfigError, match="1 <= model.bottleneck.k <= model.latent_dim=12"):
        TopK(in_features=4, latent_dim=12, k=k)


@pytest.mark.parametrize("shape", [[1, 8, 8], [1, 28, 28], [3, 32, 32], [2, 7, 9]])
def test_resnet_round_trip_restores_any_shape(shape: list[int]) -> None:
    enc = ResNetEncoder(shape, channels=[4, 8], blocks=2, activation=torch.nn.ReLU)
    dec = ResNetDecoder(shape, latent_dim=3, channels=[4, 8], blocks=2, activation=torch.nn.ReLU)
    assert enc(torch.rand(2, *shape)).shape == (2, enc.out_dim)
    assert dec(torch.randn(2, 3)).shape == (2, *shape)
    assert sum(isinstance(m, ResidualBlock) for m in [*enc.modules(), *dec.modules()]) == 2 * 2 * 2


def test_resnet_refuses_too_many_downsamplings_and_flat_data() -> None:
    with pytest.raises(ConfigError, match="too many for an input of size 8"):
        ResNetEncoder([1, 8, 8], channels=[4, 4, 4, 4, 4], blocks=1, activation=torch.nn.ReLU)
    with pytest.raises(ConfigError, match=r"resnet needs signals \(C, L\) or images \(C, H, W\), got data.shape=\[64\]"):
        ResNetDecoder([64], latent_dim=2, channels=[4], blocks=1, activation=torch.nn.ReLU)


ZOO = [("vq_vae", "resnet", VectorQuantizer), ("vq_vae", "mlp", VectorQuantizer), ("ksparse_ae", "conv", TopK),
       ("ksparse_ae", "resnet", TopK)]


@pytest.mark.parametrize(("variant", "arch", "kind"), ZOO)
def test_zoo_configs_build_and_train(variant: str, arch: str, kind: type, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build(compose_cfg(["data=digits", f"model={variant}", f"model/arch={arch}", "model.latent_dim=8",
                               "model.bottleneck.k=4" if variant == "ksparse_ae" else "model.bottleneck.num_codes=64"],
                              tmp_path).model)
    assert isinstance(model.bottleneck, kind) and set(model.loss_weights) <= set(model.bottleneck.terms)
    protos = (torch.rand(4, 1, 8, 8) > 0.6).float()  # digits-like: 4 binary "glyphs", noisy copies in [0, 1]
    x = (protos[torch.arange(32) % 4] + 0.1 * torch.randn(32, 1, 8, 8)).clamp(0, 1)
    assert model.eval().encode(x).shape == (32, 8)
    assert model.decode(torch.randn(32, 8)).shape == (32, 1, 8, 8)
    assert model.reconstruct(x).shape == (32, 1, 8, 8)
    mse_before = (model.reconstruct(x) - x).pow(2).mean().item()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        out, b = model.train()(x)
        loss = model.likelihood.nll(out, x).mean() + sum(w * b.terms[k].mean() for k, w in model.loss_weights.items())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    mse_after = (model.eval().reconstruct(x) - x).pow(2).mean().item()
    assert losses[-1] < losses[0] and mse_after < 0.5 * mse_before, (losses[0], losses[-1], mse_before, mse_after)


def test_zoo_config_errors_surface_through_build(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="code_dim=4 must divide model.latent_dim=6"):
        build(compose_cfg(["data=digits", "model=vq_vae", "model.latent_dim=6"], tmp_path).model)
    with pytest.raises(ConfigError, match="k <= model.latent_dim=5"):
        build(compose_cfg(["data=digits", "model=ksparse_ae", "model.latent_dim=5"], tmp_path).model)
    cfg = compose_cfg(["data=digits", "model=vq_vae"], tmp_path).model
    got = (cfg.name, cfg.bottleneck.num_codes, cfg.loss_weights.commit, cfg.bottleneck._partial_)
    assert got == ("vq_vae", 512, 0.25, True)
