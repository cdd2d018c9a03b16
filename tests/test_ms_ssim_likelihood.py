"""The MS-SSIM reconstruction loss (model/likelihood=ms_ssim) against torchmetrics' MS-SSIM of each image alone, its
scale rule, its refusals, and an autoencoder trained with it on digit-sized and Fashion-MNIST-sized images."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as ms_ssim

from aelab.commands import check
from aelab.core.build import build
from aelab.core.errors import ConfigError
from aelab.evals.likelihood import ImportanceWeightedNLL
from aelab.losses.likelihood import MSSSIM, WANG_BETAS, ms_ssim_scales
from helpers import compose_cfg


def pair(shape: tuple[int, ...], gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder logits and targets in [0, 1] whose images are similar but not equal (smooth target + noise)."""
    target = F.interpolate(torch.rand(shape[0], shape[1], 4, 4, generator=gen, dtype=torch.float64),
                           size=shape[2:], mode="bilinear")  # (B, C, 4, 4) -> (B, C, H, W)
    noisy = (target + 0.15 * torch.randn(shape, generator=gen, dtype=torch.float64)).clamp(0.02, 0.98)
    return torch.logit(noisy), target


@pytest.mark.parametrize("shape", [(3, 1, 8, 8), (3, 1, 28, 28), (2, 3, 32, 32), (2, 1, 64, 48)])
def test_nll_is_one_minus_the_ms_ssim_of_each_image_alone(shape: tuple[int, ...]) -> None:
    out, target = pair(shape, torch.Generator().manual_seed(0))
    loss = MSSSIM(list(shape[1:]), weight=2.0)
    nll = loss.nll(out, target)
    window, scales = ms_ssim_scales(min(shape[2:]))
    kept = WANG_BETAS[:scales]
    for i in range(shape[0]):  # torchmetrics on one image at a time: no batch statistic leaks into an example
        alone = ms_ssim(torch.sigmoid(out[i:i + 1]), target[i:i + 1], gaussian_kernel=window == 11, sigma=1.5,
                        kernel_size=window, data_range=1.0, betas=tuple(b * sum(WANG_BETAS) / sum(kept) for b in kept),
                        normalize="simple")
        torch.testing.assert_close(nll[i], 2.0 * (1.0 - alone))
    assert 0.05 < float(nll.min()) and float(nll.max()) < 2.0  # similar images: a loss well inside (0, weight)
    mixed = MSSSIM(list(shape[1:]), weight=2.0, alpha=0.84).nll(out, target)
    l1 = (torch.sigmoid(out) - target).abs().flatten(1).mean(1)
    torch.testing.assert_close(mixed, 0.84 * nll + 2.0 * 0.16 * l1)


def test_from_176_px_the_loss_is_torchmetrics_default_ms_ssim() -> None:
    """Five scales, the 11-px Gaussian window and Wang et al.'s betas: torchmetrics' defaults (from 176 px), unchanged."""
    out, target = pair((1, 1, 176, 180), torch.Generator().manual_seed(1))
    out, target = out.float(), target.float()
    default = ms_ssim(torch.sigmoid(out), target, data_range=1.0, reduction="none", normalize="simple")
    torch.testing.assert_close(MSSSIM([1, 176, 180]).nll(out, target), 1.0 - default)


def test_identical_images_give_zero() -> None:
    target = torch.rand(4, 3, 28, 28, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.9 + 0.05
    nll = MSSSIM([3, 28, 28], alpha=0.84).nll(torch.logit(target), target)
    torch.testing.assert_close(nll, torch.zeros(4, dtype=torch.float64), atol=1e-10, rtol=0)


@pytest.mark.parametrize(("side", "window", "scales"),
                         [(8, 3, 2), (28, 11, 2), (32, 11, 2), (64, 11, 3), (96, 11, 3), (256, 11, 5)])
def test_the_scale_rule(side: int, window: int, scales: int) -> None:
    """Every scale keeps >= window px (side // 2^(s-1)); 96 px stops at 3 for torchmetrics' bound 96 // 3^2 < 11."""
    assert ms_ssim_scales(side) == (window, scales)
    assert all(side // 2 ** (s - 1) >= window for s in range(1, scales + 1))
    one_more_fits = scales < 5 and side // 2**scales >= window and side // scales**2 >= window
    assert not one_more_fits


def test_every_size_from_6_px_gets_scales_torchmetrics_accepts() -> None:
    for side in range(6, 130, 9):
        loss = MSSSIM([1, side, side + 3])
        out, target = pair((1, 1, side, side + 3), torch.Generator().manual_seed(side))
        assert loss.scales >= 2 and math.isfinite(float(loss.nll(out, target))), side


@pytest.mark.parametrize(("shape", "message"), [([1, 256], "needs images"), ([784], "needs images"),
                                                ([1, 5, 5], "at least 6 px"), ([3, 64, 4], "at least 6 px")])
def test_refuses_what_it_cannot_score(shape: list[int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MSSSIM(shape)


@pytest.mark.parametrize("data", ["digits", "fashion_mnist"])
def test_an_autoencoder_with_it_lowers_the_loss_on_8_and_28_px_images(data: str, tmp_path: Path) -> None:
    """model=ae (mlp) + model/likelihood=ms_ssim, 15 Adam steps on a fixed batch: digits, and digits resized to 28 px."""
    digits = build(compose_cfg(["data=digits"], tmp_path).data)
    digits.setup()
    batch = digits.fixed_batch("train", 32)
    if data == "fashion_mnist":  # the model is sized from data.shape only: no download
        batch = {**batch, "x": F.interpolate(batch["x"], size=(28, 28), mode="bilinear")}
        batch["target"] = batch["x"]
    torch.manual_seed(0)
    model = build(compose_cfg([f"data={data}", "model=ae", "model/arch=mlp", "model/likelihood=ms_ssim"], tmp_path).model)
    assert isinstance(model.likelihood, MSSSIM) and model.likelihood.scales == 2
    check.loss_decreases(model, batch, steps=15)


def test_no_elbo_nor_importance_weighted_likelihood_under_it(tmp_path: Path) -> None:
    model = build(compose_cfg(["data=digits", "model=vae", "model/likelihood=ms_ssim"], tmp_path).model)
    batch = {"x": torch.rand(4, 1, 8, 8), "target": torch.rand(4, 1, 8, 8)}
    logs = model.compute_loss(batch, "val")[1]
    assert "kl" in logs and "elbo" not in logs and "test/elbo" not in model.metric_directions()
    assert "normalised" in ImportanceWeightedNLL().skip_reason(model, None)
    gaussian = build(compose_cfg(["data=digits", "model=vae"], tmp_path).model)
    assert "elbo" in gaussian.compute_loss(batch, "val")[1] and ImportanceWeightedNLL().skip_reason(gaussian, None) is None
