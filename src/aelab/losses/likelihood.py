"""Reconstruction likelihoods p(x|z): the decoder's output parameterises them; `nll` is summed per sample.

`MSSSIM` is a reconstruction loss in the same place, not a normalised density (`normalised = False`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

from aelab.core.errors import ConfigError


class Likelihood(nn.Module):
    """`nll(out, target) -> (B,)` negative log-likelihood in nats; `mean(out)` the reconstruction."""

    normalised = True  # nll is -log of a density in target: the ELBO and the importance-weighted likelihood hold

    def nll(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Gaussian(Likelihood):
    """N(target; out, sigma^2 I): nll = sum 0.5 ((t - out) / sigma)^2 + log sigma + 0.5 log 2 pi (MSE up to scale).

    `learn_sigma` makes log sigma a trained parameter starting at log `sigma` (the learned decoder variance, gamma,
    of Dai & Wipf 2019), so the fit sets the weight of the reconstruction against the other terms.
    """

    def __init__(self, sigma: float = 1.0, learn_sigma: bool = False) -> None:
        super().__init__()
        if sigma <= 0:
            raise ConfigError(f"model.likelihood.sigma must be positive, got {sigma}")
        log_sigma = torch.tensor(math.log(sigma))
        if learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma, persistent=False)  # fixed: not part of the checkpoint

    @property
    def sigma(self) -> float:
        return float(self.log_sigma.exp())

    def nll(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        per_dim = 0.5 * (target - out).pow(2) * torch.exp(-2 * self.log_sigma) + self.log_sigma + 0.5 * math.log(2 * math.pi)
        return per_dim.flatten(1).sum(dim=1)  # (B, ...) -> (B,)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return out


class Bernoulli(Likelihood):
    """Bernoulli(target; sigmoid(out)) on [0, 1] intensities: nll = summed binary cross-entropy with logits."""

    def nll(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(out, target, reduction="none").flatten(1).sum(dim=1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out)


WANG_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003's exponents, finest scale first


def ms_ssim_scales(side: int) -> tuple[int, int]:
    """(window, scales) for images whose smaller side is `side` px: Wang et al.'s 11-px Gaussian window when two
    scales fit it, else a 3-px uniform one; scales: as many (at most 5) as keep side // 2^(s-1) >= window at every
    scale s (and torchmetrics' own bound side // (scales - 1)^2 >= window)."""
    window = 11 if side >= 2 * 11 else 3
    scales = 0
    while scales < len(WANG_BETAS) and side // 2**scales >= window and side // max(1, scales) ** 2 >= window:
        scales += 1
    return window, scales


class MSSSIM(Likelihood):
    """nll = weight * [alpha (1 - MS-SSIM(sigmoid(out), target)) + (1 - alpha) mean |sigmoid(out) - target|].

    MS-SSIM (Wang, Simoncelli & Bovik 2003, "Multiscale structural similarity for image quality assessment") as a
    loss (Zhao et al. 2017, "Loss Functions for Image Restoration with Neural Networks", who mix it with L1 at
    alpha = 0.84; their L1 is Gaussian-weighted, the plain mean here). Images in [0, 1] (data range 1), torchmetrics'
    implementation per image with its training normalisation `simple` (each scale's factor (s + 1) / 2, so random
    reconstructions keep a gradient; identical images still give 1). Window and scales from the image size
    (`ms_ssim_scales`), Wang et al.'s betas of the scales kept, rescaled to their total over five scales. Not a density: no ELBO or
    importance-weighted likelihood is computed under it.
    """

    normalised = False

    def __init__(self, shape: list[int], weight: float = 1.0, alpha: float = 1.0) -> None:
        super().__init__()
        if len(shape) != 3:
            raise ConfigError(f"model.likelihood=ms_ssim needs images (C, H, W), got data.shape={list(shape)}")
        self.window, self.scales = ms_ssim_scales(min(shape[1:]))
        if self.scales < 2:
            raise ConfigError(f"model.likelihood=ms_ssim needs images of at least 6 px a side (two scales of a 3-px "
                              f"window), got data.shape={list(shape)}")
        if weight <= 0 or not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"model.likelihood needs weight > 0 and alpha in [0, 1], got weight={weight}, alpha={alpha}")
        kept = WANG_BETAS[: self.scales]
        self.betas = tuple(b * sum(WANG_BETAS) / sum(kept) for b in kept)  # all five: Wang's (torchmetrics' defaults)
        self.weight, self.alpha = float(weight), float(alpha)

    def similarity(self, image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """MS-SSIM per image (B,) of images (B, C, H, W) in [0, 1]."""
        gaussian = self.window == 11  # torchmetrics' Gaussian window is 11 px at sigma 1.5
        return multiscale_structural_similarity_index_measure(
            image, target, gaussian_kernel=gaussian, sigma=1.5, kernel_size=self.window, reduction="none",
            data_range=1.0, betas=self.betas, normalize="simple")

    def nll(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        image = torch.sigmoid(out)
        loss = self.alpha * (1.0 - self.similarity(image, target))
        if self.alpha < 1.0:
            loss = loss + (1.0 - self.alpha) * (image - target).abs().flatten(1).mean(dim=1)  # (B, ...) -> (B,)
        return self.weight * loss

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out)
