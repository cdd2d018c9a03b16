"""Residual, product (and optimised product) and hierarchical VQ against exact answers: the zero code's monotone
error, straight-through Jacobians, independent sub-space codebooks, the nearest-centroid error of clustered data, an
orthogonal rotation, the top code steering the bottom's; short trainings on digits; the four variants via the CLI."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from aelab.bottlenecks.pq import ProductQuantizer
from aelab.bottlenecks.rvq import ResidualQuantizer
from aelab.bottlenecks.vq import VectorQuantizer, perplexity
from aelab.bottlenecks.vqvae2 import HierarchicalQuantizer
from aelab.core.build import build
from aelab.core.errors import ConfigError
from helpers import compose_cfg, train_through_cli


def identity_proj(bottleneck: torch.nn.Module) -> torch.nn.Module:
    """Make z_e = h (the bottleneck's in_features equal to its latent_dim)."""
    with torch.no_grad():
        bottleneck.proj.weight.copy_(torch.eye(bottleneck.proj.weight.shape[0]))
        bottleneck.proj.bias.zero_()
    return bottleneck


def level_errors(rvq: ResidualQuantizer, z_e: torch.Tensor) -> torch.Tensor:
    """||r_l||^2 per example (B, L + 1) for l = 0..L, the residual taken level by level as the quantiser does."""
    codes = rvq.codes(z_e)  # (B, L, G)
    residual = z_e.view(len(z_e), rvq.groups, rvq.code_dim)  # (B, d) -> (B, G, c)
    errors = [residual.pow(2).sum((1, 2))]
    for level, book in enumerate(rvq.levels):
        residual = residual - book.codebook[codes[:, level]]  # (B, G, c)
        errors.append(residual.pow(2).sum((1, 2)))
    return torch.stack(errors, dim=1)


@pytest.mark.parametrize("zero_code", [True, False])
def test_rvq_error_never_rises_with_levels_when_each_codebook_holds_zero(zero_code: bool) -> None:
    """Random codes wider than the data: without the zero code some level overshoots; with it none can (exactly)."""
    torch.manual_seed(0)
    rvq = identity_proj(ResidualQuantizer(8, 8, levels=6, num_codes=16, code_dim=2, zero_code=zero_code)).double().eval()
    with torch.no_grad():
        for book in rvq.levels:
            book.codebook.mul_(1.5)
        z_e = torch.randn(512, 8, dtype=torch.float64)
        errors = level_errors(rvq, z_e)
        stats = rvq(z_e).stats
    rises = (errors[:, 1:] > errors[:, :-1]).sum().item()
    if zero_code:
        assert rises == 0
        assert errors[:, -1].mean() < 0.5 * errors[:, 0].mean()  # the levels do quantise, not only pick zero
    else:
        assert rises > 0
    means = [stats[f"residual_{level}"].item() for level in range(1, 7)]
    assert means == pytest.approx(errors[:, 1:].mean(0).tolist(), rel=1e-12)
    for book in rvq.levels:  # every code restarts each step but the zero code, which stays zero through EMA and restarts
        book.dead_threshold = 1e9
    steps = [rvq.train()(z_e).stats for _ in range(3)]
    dead = [stats[f"dead_codes_{level}"].item() for stats in steps for level in range(1, 7)]
    assert dead == [15 / 16 if zero_code else 1.0] * 18
    assert all(torch.equal(book.codebook[0], torch.zeros(2, dtype=torch.float64)) for book in rvq.levels) == zero_code


def test_vq_checkpoint_keeps_its_state_names() -> None:
    """The codebook logic moved into EMACodebook; vq_vae checkpoints written before still load strictly."""
    vq = VectorQuantizer(in_features=6, latent_dim=4, num_codes=8, code_dim=2)
    names = {"proj.weight", "proj.bias", "codebook", "cluster_size", "embed_sum"}
    assert set(vq.state_dict()) == names
    vq.load_state_dict({name: torch.zeros_like(value) for name, value in vq.state_dict().items()}, strict=True)


def test_rvq_straight_through_jacobian_is_the_identity_and_the_value_is_the_sum_of_levels() -> None:
    torch.manual_seed(0)
    rvq = identity_proj(ResidualQuantizer(4, 4, levels=3, num_codes=8, code_dim=2)).eval()
    h = torch.randn(5, 4)
    jac = torch.autograd.functional.jacobian(lambda x: rvq(x).z, h)  # (B, d, B, d)
    torch.testing.assert_close(jac, torch.eye(20).view(5, 4, 5, 4))
    codes = rvq.codes(h)
    sums = sum(book.codebook[codes[:, level]] for level, book in enumerate(rvq.levels)).flatten(1)  # (B, G, c) -> (B, d)
    torch.testing.assert_close(rvq(h).z, sums)
    torch.testing.assert_close(rvq.dequantize(codes), sums)


def train_briefly(variant: str, steps: int, tmp_path: Path) -> tuple[dict, dict]:
    """A variant on digits (mlp, latent 8) trained `steps` Adam steps on batches of 64 in-process: its val logs and
    reconstruction MSE (`mse`) before and after."""
    torch.manual_seed(0)
    cfg = compose_cfg(["data=digits", f"model={variant}", "model/arch=mlp", "model.latent_dim=8"], tmp_path)
    data = build(cfg.data, task=build(cfg.task), seed=0)
    data.setup()
    model, train, val = build(cfg.model), data.whole("train"), data.whole("val")
    with torch.no_grad():
        before = model.eval().compute_loss(val, "val")[1] | {"mse": F.mse_loss(model.reconstruct(val["x"]), val["x"])}
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        idx = torch.randint(len(train["x"]), (64,))
        loss = model.train().compute_loss({k: v[idx] for k, v in train.items()}, "train")[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = model.eval().compute_loss(val, "val")[1] | {"mse": F.mse_loss(model.reconstruct(val["x"]), val["x"])}
    return before, after


def test_rvq_trained_on_digits_lowers_the_error_level_by_level_on_held_out_data(tmp_path: Path) -> None:
    _, after = train_briefly("rvq_vae", 150, tmp_path)
    residuals = [after[f"residual_{level}"].item() for level in range(1, 5)]
    assert all(a > b for a, b in zip(residuals, residuals[1:])), residuals
    assert all(after[f"perplexity_{level}"] > 2 for level in range(1, 5))


def test_pq_has_one_independent_codebook_per_subspace() -> None:
    """Moving the data of sub-space 0 moves codebook 0 only; each codebook takes the EMA step of its own rows."""
    torch.manual_seed(0)
    pq = identity_proj(ProductQuantizer(8, 8, num_codes=6, code_dim=2, decay=0.5, dead_threshold=0.0))
    h = torch.randn(64, 8)
    moved = h.clone()
    moved[:, :2] += 3.0
    copies = [copy.deepcopy(pq).train() for _ in range(2)]
    copies[0](h)
    copies[1](moved)
    assert len(pq.books) == 4 and len({id(book.codebook) for book in pq.books}) == 4
    assert not torch.equal(copies[0].books[0].codebook, copies[1].books[0].codebook)
    for g in range(1, 4):
        for name in ("codebook", "cluster_size", "embed_sum"):
            assert torch.equal(getattr(copies[0].books[g], name), getattr(copies[1].books[g], name))
    for g, book in enumerate(pq.books):  # a lone codebook updated with sub-space g's rows ends where pq's did
        alone = copy.deepcopy(book)
        alone.quantize_rows(h[:, 2 * g:2 * g + 2], learn=True)
        torch.testing.assert_close(alone.codebook, copies[0].books[g].codebook, rtol=0, atol=0)


def test_pq_error_on_clustered_subspaces_is_the_nearest_centroid_error() -> None:
    """Each sub-space has its own 9 centroids 2 apart; noise uniform in [-a, a]^2 with a = 0.4 stays nearer its own
    centroid (|noise| <= 0.57 < 1), so the error is exactly ||noise||^2, of mean G c a^2 / 3."""
    gen = torch.Generator().manual_seed(0)
    groups, a, n = 4, 0.4, 4000
    grid = torch.cartesian_prod(torch.arange(3.0), torch.arange(3.0)) * 2.0  # (9, 2)
    centroids = torch.stack([grid + torch.randn(2, generator=gen) * 5 for _ in range(groups)]).double()  # (G, 9, 2)
    pq = identity_proj(ProductQuantizer(8, 8, num_codes=9, code_dim=2)).double().eval()
    with torch.no_grad():
        for book, c in zip(pq.books, centroids):
            book.codebook.copy_(c)
    labels = torch.randint(9, (n, groups), generator=gen)
    noise = (2 * torch.rand(n, groups, 2, generator=gen, dtype=torch.float64) - 1) * a
    x = (centroids[torch.arange(groups), labels] + noise).flatten(1)  # (n, G, 2) -> (n, 8)
    with torch.no_grad():
        commit = pq(x).terms["commit"]
    assert torch.equal(pq.codes(x), labels)
    torch.testing.assert_close(commit, noise.pow(2).sum((1, 2)))
    sd = math.sqrt(groups * 2 * 4 * a**4 / 45 / n)  # Var[u^2] = 4 a^4 / 45 for u ~ U(-a, a)
    assert commit.mean().item() == pytest.approx(groups * 2 * a**2 / 3, abs=4 * sd)


def test_opq_rotation_stays_orthogonal_while_learned_and_codebook_vectors_round_trip() -> None:
    torch.manual_seed(0)
    opq = identity_proj(ProductQuantizer(8, 8, num_codes=16, code_dim=2, rotate=True))
    start, first = opq.rotation.weight.detach().clone(), None
    optimizer = torch.optim.Adam(opq.rotation.parameters(), lr=0.05)
    h = torch.randn(256, 8) * torch.tensor([3.0, 0.1] * 4)  # anisotropic: a rotation changes the distortion
    for _ in range(20):  # eval: the codes stay fixed and R takes gradient steps on the distortion (OPQ's R-step)
        loss = opq.eval()(h).terms["commit"].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    rot = opq.rotation.weight.detach()
    assert (rot - start).abs().max() > 1e-2 and loss < first  # the rotation was learned by gradient
    torch.testing.assert_close(rot @ rot.T, torch.eye(8), rtol=0, atol=1e-5)
    codes = torch.randint(16, (32, 4))
    z = opq.dequantize(codes)  # codebook vectors in the original coordinates
    assert torch.equal(opq.codes(z), codes)
    torch.testing.assert_close(opq(z).z, z, rtol=0, atol=1e-5)
    jac = torch.autograd.functional.jacobian(lambda x: opq(x).z, z[:3])  # straight-through: dz/dz_e = R^T R = I
    torch.testing.assert_close(jac, torch.eye(24).view(3, 8, 3, 8), rtol=0, atol=1e-5)


def test_vqvae2_levels_have_their_own_codebooks_and_usage() -> None:
    torch.manual_seed(0)
    vq2 = HierarchicalQuantizer(10, 8, top_dim=2, num_codes=8, code_dim=2, decay=0.5, dead_threshold=0.0)
    h = torch.randn(128, 10)
    codes = vq2.eval().codes(h)  # (B, 1 + 3): the top code, then the bottom's three
    stats = vq2(h).stats
    top, bottom = F.one_hot(codes[:, :1].flatten(), 8).double(), F.one_hot(codes[:, 1:].flatten(), 8).double()
    assert stats["perplexity_top"].item() == pytest.approx(perplexity(top).item(), rel=1e-6)
    assert stats["perplexity_bottom"].item() == pytest.approx(perplexity(bottom).item(), rel=1e-6)
    assert stats["perplexity_top"].item() != pytest.approx(stats["perplexity_bottom"].item())
    alone = copy.deepcopy(vq2.top)  # a train step moves the top codebook by the top codes' rows only
    alone.quantize_rows(vq2.top_proj(h).detach(), learn=True)
    vq2.train()(h)
    torch.testing.assert_close(vq2.top.codebook, alone.codebook, rtol=0, atol=0)
    assert not torch.equal(vq2.top.codebook, vq2.bottom.codebook[: len(vq2.top.codebook)])


def test_vqvae2_top_code_changes_the_bottom_assignment() -> None:
    torch.manual_seed(0)
    vq2 = HierarchicalQuantizer(10, 8, top_dim=2, num_codes=16, code_dim=2).eval()
    h = torch.randn(64, 10)
    tops = vq2.top.codebook[:2].unsqueeze(1).expand(2, 64, 2)  # every example given top code 0, then code 1
    with torch.no_grad():
        assigned = [vq2.bottom_level(h, top)[2] for top in tops]
        assert (assigned[0] != assigned[1]).any(dim=1).float().mean() > 0.2
        vq2.bottom_proj.weight[:, 10:] = 0.0  # cut the top code out of the bottom's input: no more influence
        assert torch.equal(*[vq2.bottom_level(h, top)[2] for top in tops])


def test_vqvae2_short_training_lowers_the_loss_and_uses_both_levels(tmp_path: Path) -> None:
    before, after = train_briefly("vqvae2", 150, tmp_path)
    assert after["loss"] < before["loss"] and after["mse"] < 0.5 * before["mse"], (before, after)
    assert after["perplexity_top"] > 2 and after["perplexity_bottom"] > 2


@pytest.mark.parametrize("bottleneck", [VectorQuantizer(10, 8, 16, 2), ResidualQuantizer(10, 8, 3, 16, 2),
                                        ProductQuantizer(10, 8, 16, 2), ProductQuantizer(10, 8, 16, 2, rotate=True),
                                        HierarchicalQuantizer(10, 8, 2, 16, 2)], ids=lambda b: type(b).__name__)
def test_the_code_is_the_dequantized_code_indices(bottleneck: torch.nn.Module) -> None:
    """codes(h) and dequantize(codes) give the code embed(h) and forward(h) pass on (what a prior over indices needs)."""
    torch.manual_seed(0)
    h = torch.randn(64, 10)
    with torch.no_grad():
        z = bottleneck.eval()(h).z
        torch.testing.assert_close(bottleneck.dequantize(bottleneck.codes(h)), z, rtol=0, atol=1e-6)
        torch.testing.assert_close(bottleneck.embed(h), z, rtol=0, atol=0)


@pytest.mark.parametrize(("variant", "override", "message"), [
    ("rvq_vae", "model.bottleneck.code_dim=3", "rvq: code_dim=3 must divide model.latent_dim=8"),
    ("rvq_vae", "model.bottleneck.levels=0", "rvq: sizes must be positive integers"),
    ("pq_vae", "model.bottleneck.code_dim=5", "pq: code_dim=5 must divide model.latent_dim=8"),
    ("vqvae2", "model.bottleneck.top_dim=8", "vqvae2: need top_dim < model.latent_dim"),
    ("rvq_vae", "model.bottleneck.decay=1.0", "vq: need 0 <= decay < 1")])
def test_bad_sizes_are_config_errors(variant: str, override: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        build(compose_cfg(["data=digits", f"model={variant}", "model.latent_dim=8", override], tmp_path).model)


VARIANT_STATS = {"rvq_vae": [f"{s}_{level}" for s in ("perplexity", "dead_codes", "residual") for level in range(1, 5)],
                 "pq_vae": ["perplexity", "dead_codes"], "opq_vae": ["perplexity", "dead_codes"],
                 "vqvae2": [f"{s}_{level}" for s in ("perplexity", "dead_codes") for level in ("top", "bottom")]}


@pytest.mark.slow
def test_each_quantizer_trains_an_epoch_through_the_cli_and_logs_its_stats(tmp_path: Path) -> None:
    """One short epoch of each (processes in parallel): the run completes; commit and the per-level stats at test."""
    results = train_through_cli({variant: [] for variant in VARIANT_STATS}, tmp_path)
    for variant, names in VARIANT_STATS.items():
        result = results[variant]
        for key in ["train/commit", "test/commit", *[f"test/{name}" for name in names]]:
            assert math.isfinite(result["metrics"][key]), (variant, key)
        assert result["metrics"][f"test/{names[0]}"] >= 1.0  # a perplexity counts at least one code
