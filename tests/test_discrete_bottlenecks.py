"""FSQ, residual FSQ, Gumbel-softmax and semantic hashing against enumeration, autograd, closed forms and
numerical integration; each new variant trained one short epoch through the CLI and sampled after."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Categorical, kl_divergence

from aelab.bottlenecks.fsq import FSQ, round_ste
from aelab.bottlenecks.gumbel import GumbelQuantizer, gumbel_noise, relaxed_one_hot
from aelab.bottlenecks.hashing import SemanticHashing
from aelab.bottlenecks.rfsq import ResidualFSQ
from aelab.callbacks.schedules import TemperatureDecay
from aelab.core.errors import ConfigError
from helpers import train_through_cli


def identity_proj(bottleneck: torch.nn.Module) -> torch.nn.Module:
    """The bottleneck with its input projection set to the identity (in_features = latent_dim)."""
    with torch.no_grad():
        bottleneck.proj.weight.copy_(torch.eye(bottleneck.proj.weight.shape[0]))
        bottleneck.proj.bias.zero_()
    return bottleneck


@pytest.mark.parametrize("levels", [[8, 5, 5, 5], [8, 6, 5], [3, 4]])
def test_fsq_implicit_codebook_has_prod_levels_codes(levels: list[int]) -> None:
    n = len(levels)
    fsq = identity_proj(FSQ(n, n, levels=levels))
    axis = torch.linspace(-3, 3, 25)  # spacing 0.25, finer than the narrowest level's input interval (~0.29 for L=8)
    grid = torch.cartesian_prod(*[axis] * n)  # (25^n, n): every combination
    codes = fsq.embed(grid)
    unique = torch.unique(codes, dim=0)
    assert len(unique) == math.prod(levels)
    assert torch.equal(unique, torch.unique(fsq.grid(), dim=0))  # the enumerated set is the implicit codebook
    assert torch.equal(torch.sort(fsq.index(unique)).values, torch.arange(math.prod(levels)))  # indices 0 .. K - 1


def test_fsq_codes_are_on_the_level_grid_and_index_by_mixed_radix() -> None:
    torch.manual_seed(0)
    fsq = FSQ(10, 8, levels=[8, 5, 5, 5])
    h = 3 * torch.randn(500, 10)
    z = fsq.embed(h).view(500, 2, 4)  # (B, d) -> (B, G, n)
    digits = z * torch.tensor([4.0, 2, 2, 2])
    assert torch.equal(digits, digits.round())  # exactly on the grid, no straight-through residue
    assert digits.amin((0, 1)).tolist() == [-4, -2, -2, -2] and digits.amax((0, 1)).tolist() == [3, 2, 2, 2]
    idx = fsq.codes(h)[0]  # (B, G)
    shifted = (digits + torch.tensor([4.0, 2, 2, 2])).long()
    expected = shifted[..., 0] + 8 * shifted[..., 1] + 40 * shifted[..., 2] + 200 * shifted[..., 3]
    assert torch.equal(idx, expected)
    assert torch.equal(fsq.grid()[idx], z)


def test_fsq_rounding_is_straight_through_and_the_map_has_the_bounds_derivative() -> None:
    x = torch.linspace(-3, 3, 101, requires_grad=True)
    y = round_ste(x)
    assert torch.equal(y, x.detach().round())
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(101))  # d round_ste / dx = 1
    fsq = FSQ(4, 4, levels=[8, 5, 5, 5])
    z = torch.randn(200, 4, requires_grad=True)
    fsq.quantize(z).sum().backward()
    levels = torch.tensor([8.0, 5, 5, 5])
    half_l = (levels - 1) * 1.001 / 2
    shift = torch.atanh(torch.tensor([0.5, 0, 0, 0]) / half_l)
    closed = half_l * (1 - torch.tanh(z.detach() + shift) ** 2) / torch.tensor([4.0, 2, 2, 2])  # f'(z) / floor(L/2)
    torch.testing.assert_close(z.grad, closed)


def test_fsq_usage_stats_and_the_dead_code_window() -> None:
    fsq = identity_proj(FSQ(4, 4, levels=[8, 5, 5, 5])).train()
    codes = fsq.grid()[torch.tensor([0, 0, 7, 999])]  # codes 0 (twice), 7, 999
    z = torch.atanh((codes * fsq.half_width + torch.tensor([0.5, 0, 0, 0])) / ((fsq.levels - 1) * 1.001 / 2))
    h = z - torch.atanh(torch.tensor([0.5, 0, 0, 0]) / ((fsq.levels - 1) * 1.001 / 2))  # f^-1 of the level centres
    stats = fsq(h).stats
    assert stats["perplexity"].item() == pytest.approx(math.exp(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))))
    assert stats["codebook_usage"].item() == pytest.approx(3 / 1000)
    assert stats["dead_codes"].item() == pytest.approx(997 / 1000)  # EMA starts at 0: never used = dead
    other = h[[0]]  # code 0 only, from now on
    for _ in range(220):
        fsq(other)
    assert fsq.eval()(other).stats["dead_codes"].item() == pytest.approx(997 / 1000)  # 0.01 * 0.99^220 > 1e-3: alive
    for _ in range(20):
        fsq.train()(other)
    assert fsq.eval()(other).stats["dead_codes"].item() == pytest.approx(999 / 1000)  # codes 7, 999 left the window


@pytest.mark.parametrize(("cls", "kwargs", "match"), [
    (FSQ, {"latent_dim": 6}, r"latent_dim=6 must be a multiple of len\(model.bottleneck.levels\)=4"),
    (FSQ, {"latent_dim": 8, "levels": [8, 1]}, "levels must be integers >= 2"),
    (ResidualFSQ, {"latent_dim": 8, "stages": 0}, "stages must be a positive integer"),
    (GumbelQuantizer, {"latent_dim": 6}, "code_dim=4 must divide model.latent_dim=6"),
    (SemanticHashing, {"latent_dim": 8, "noise_std": -1.0}, "noise_std must be >= 0")])
def test_discrete_bottlenecks_refuse_bad_config(cls: type, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        cls(in_features=4, **kwargs)


def test_residual_fsq_error_does_not_rise_with_stages_and_one_stage_is_fsq() -> None:
    torch.manual_seed(0)
    x = 0.7 * torch.randn(4000, 8)
    errors = []
    for stages in range(1, 6):
        rfsq = identity_proj(ResidualFSQ(8, 8, levels=[8, 5, 5, 5], stages=stages))
        target = rfsq.bound(x.view(-1, 2, 4)) / rfsq.half_width  # (B, 8) -> (B, 2, 4): what the stages approximate
        errors.append((rfsq.embed(x) - target.reshape(-1, 8)).pow(2).sum(1))  # (B, 2, 4) -> (B, 8)
    for before, after in itertools.pairwise(errors):
        assert (after <= before + 1e-7).all()  # per vector, not only on average
    means = [float(e.detach().mean()) for e in errors]
    assert means[-1] < 1e-4 * means[0], means
    fsq = identity_proj(FSQ(8, 8))
    one = identity_proj(ResidualFSQ(8, 8, stages=1))
    assert torch.equal(one.embed(x), fsq.embed(x)) and torch.equal(one.codes(x), fsq.codes(x))


def test_gumbel_noise_has_the_gumbel_moments() -> None:
    torch.manual_seed(0)
    g = gumbel_noise(torch.zeros(400_000))
    assert g.mean().item() == pytest.approx(0.5772157, abs=0.01)  # Euler-Mascheroni constant
    assert g.var().item() == pytest.approx(math.pi**2 / 6, abs=0.02)


def test_gumbel_soft_sample_tends_to_the_hard_one_hot_as_tau_falls() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2000, 16)
    noise = gumbel_noise(logits)
    hard = F.one_hot((logits + noise).argmax(-1), 16).float()
    dist = [float((relaxed_one_hot(logits, noise, tau) - hard).abs().sum(-1).mean()) for tau in (1.0, 0.1, 0.01)]
    assert dist[0] > 0.5 and dist[0] > 5 * dist[1] > 25 * dist[2] and dist[2] < 0.02, dist
    gq = GumbelQuantizer(in_features=16, latent_dim=4, num_codes=16, code_dim=4, tau=0.5).train()
    h = torch.randn(30, 16)
    torch.manual_seed(1)
    z = gq(h).z
    torch.manual_seed(1)
    logits = gq.logits(h)
    expected = relaxed_one_hot(logits, gumbel_noise(logits), 0.5) @ gq.codebook  # (B, 1, K) @ (K, c) -> (B, 1, c)
    torch.testing.assert_close(z, expected.reshape(30, 4))


def test_temperature_decays_exponentially_from_start_to_end() -> None:
    module = SimpleNamespace(bottleneck=GumbelQuantizer(in_features=4, latent_dim=4, num_codes=8, code_dim=4))
    schedule = TemperatureDecay(start=1.0, end=1 / 16, steps=1000)
    taus = [schedule.apply(module, step) for step in (0, 250, 500, 1000, 5000)]
    assert taus == pytest.approx([1.0, 0.5, 0.25, 1 / 16, 1 / 16])  # 1 * (1/16)^(t / 1000), then 1/16
    assert module.bottleneck.tau.item() == pytest.approx(1 / 16)


def test_gumbel_evaluation_is_the_noiseless_argmax_code() -> None:
    torch.manual_seed(0)
    gq = GumbelQuantizer(in_features=12, latent_dim=8, num_codes=32, code_dim=2).eval()
    h = torch.randn(50, 12)
    first, second = gq(h).z, gq(h).z
    assert torch.equal(first, second)
    idx = gq.logits(h).argmax(-1)  # (B, 4)
    assert torch.equal(first, gq.codebook[idx].reshape(50, 8)) and torch.equal(gq.embed(h), first)
    hard = GumbelQuantizer(in_features=12, latent_dim=8, num_codes=32, code_dim=2, hard=True).train()
    torch.manual_seed(2)
    z = hard(h).z  # straight-through: a codebook row per position in the forward pass
    assert all(any(torch.equal(row, code) for code in hard.codebook) for row in z.view(-1, 2)[:20])


def test_gumbel_kl_is_log_k_minus_the_posterior_entropy() -> None:
    torch.manual_seed(0)
    gq = GumbelQuantizer(in_features=12, latent_dim=8, num_codes=32, code_dim=2)
    h = 2 * torch.randn(40, 12)
    logits = gq.logits(h)
    kl = gq.eval()(h).terms["kl"]
    torch.testing.assert_close(kl, (math.log(32) - Categorical(logits=logits).entropy()).sum(-1))
    uniform = Categorical(logits=torch.zeros(32))
    torch.testing.assert_close(kl, kl_divergence(Categorical(logits=logits), uniform).sum(-1))


def test_semantic_hashing_codes_are_exactly_binary_at_evaluation() -> None:
    torch.manual_seed(0)
    sh = SemanticHashing(in_features=10, latent_dim=16).eval()
    h = torch.randn(300, 10)
    out = sh(h)
    assert set(out.z.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(out.z, (sh.proj(h) > 0).float()) and torch.equal(sh.embed(h), out.z)
    p = out.z.mean(0)
    assert out.stats["bit_balance"].item() == pytest.approx(float(1 - (2 * p - 1).abs().mean()), abs=1e-6)
    train = sh.train()(h).z
    assert ((train > 0) & (train < 1)).all()  # training codes are noisy sigmoids, not yet bits


def test_semantic_hashing_noise_pushes_pre_activations_outward() -> None:
    """E[(sigmoid(a + 4 eps) - t)^2] by Gauss-Hermite quadrature: at the noise-free optimum a = logit(t) its slope
    points outward; the module's noisy training (SGD on the bias) moves a outward, the noise-free one stays."""
    t = 0.8
    a0 = math.log(t / (1 - t))
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)  # E[g(eps)] = sum w g(x) / sqrt(2 pi)
    nodes, weights = torch.tensor(nodes), torch.tensor(weights) / math.sqrt(2 * math.pi)
    a = torch.tensor(a0, dtype=torch.float64, requires_grad=True)
    expected_loss = (weights * (torch.sigmoid(a + 4 * nodes) - t) ** 2).sum()
    expected_loss.backward()
    assert a.grad.item() < -0.01  # descent raises a: outward from logit(t)
    moved = {}
    for noise_std in (4.0, 0.0):
        torch.manual_seed(0)
        sh = SemanticHashing(in_features=1, latent_dim=1, noise_std=noise_std).train()
        with torch.no_grad():
            sh.proj.weight.zero_()
            sh.proj.bias.fill_(a0)
        mc = sh(torch.zeros(100_000, 1)).z.mean().item()
        quadrature = (weights * torch.sigmoid(a0 + noise_std * nodes)).sum().item()
        assert mc == pytest.approx(quadrature, abs=0.003)  # the module's noise is N(0, noise_std^2) on the input
        optimizer = torch.optim.SGD(sh.parameters(), lr=1.0)
        for _ in range(100):
            optimizer.zero_grad()
            (sh(torch.zeros(2048, 1)).z - t).pow(2).mean().backward()
            optimizer.step()
        moved[noise_std] = sh.proj.bias.item() - a0
    assert moved[4.0] > 1.0 and abs(moved[0.0]) < 1e-3, moved


NEW = {"fsq_vae": ("perplexity", "dead_codes", "codebook_usage"), "rfsq_vae": ("perplexity", "dead_codes"),
       "gumbel_vae": ("kl", "perplexity", "dead_codes"), "semantic_hashing": ("perplexity", "bit_balance"),
       "vq_vae": ("perplexity", "dead_codes")}  # vq_vae: its samples now come from the categorical density


@pytest.mark.slow
def test_each_discrete_variant_trains_an_epoch_and_samples_through_its_code_density(tmp_path: Path) -> None:
    """One short epoch of each (processes in parallel): completed, stats logged for test, samples.png written,
    and the run reopened from best.ckpt (weights_only) samples from the stored categorical density."""
    from aelab.tracking.trained import open_run

    results = train_through_cli({variant: ["model.latent_dim=8"] for variant in NEW}, tmp_path)
    for variant, names in NEW.items():
        result = results[variant]
        for key in [f"test/{name}" for name in names]:
            assert math.isfinite(result["metrics"][key]), (variant, key)
        assert (tmp_path / variant / "samples.png").is_file()
        run = open_run(tmp_path / variant)
        assert type(run.model.density).__name__ == "CategoricalChain" and run.model.density.fitted
        torch.manual_seed(0)
        codes = run.model.density.sample(16)
        assert codes.shape == (16, 8) and run.model.sample(4).shape == (4, 1, 8, 8)
        assert torch.isfinite(run.model.density.log_prob(codes)).all()
