"""Classical restoration baselines, scored by the same restoration evaluator as the autoencoders.

- `MeanChroma` (colorize): the gray input's luminance with the training targets' mean chroma (one Cb, Cr pair in
  BT.601 YCbCr, whose Y is the gray input itself, so luminance passes through exactly).
- `ClassicalDenoiser` (denoise): for images (scikit-image, the `aelab[restoration]` extra) non-local means (Buades
  et al. 2005) or total-variation denoising (Chambolle 2004), per image, with the noise level estimated from each
  image (Donoho's wavelet MAD estimator, `estimate_sigma`), so it needs no knowledge of the test level; for audio
  clips spectral gating (noisereduce, the `aelab[audio]` extra; stationary: a per-frequency threshold from the clip's
  own spectrum). The one free factor (NLM's h / sigma, TV's weight / sigma, spectral gating's prop_decrease) is
  chosen on `tune_images` noisy/clean training pairs from `factors`, not on test data.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from aelab.baselines.base import Baseline
from aelab.core.errors import ConfigError
from aelab.core.extras import require
from aelab.data.colorspace import to_rgb, to_space
from aelab.metrics.reconstruction import data_kind

log = logging.getLogger(__name__)


class MeanChroma(Baseline):
    """Colorize with the training set's mean chroma: RGB of (Y of the input, mean Cb, mean Cr)."""

    reconstructs = True

    def fit(self, x: np.ndarray, target: np.ndarray) -> None:
        if self.in_shape[0] != 3:
            raise ConfigError(f"baseline/mean_chroma needs colour targets (3, H, W), got data.shape={self.in_shape}")
        ycbcr = to_space(torch.from_numpy(target).reshape(-1, *self.in_shape), "ycbcr")  # (N, 3, H, W)
        self.chroma = ycbcr[:, 1:].mean(dim=(0, 2, 3)).float()  # (2,)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        y = to_space(x, "ycbcr")[:, :1]  # (B, 1, H, W)
        chroma = self.chroma.to(x).view(1, 2, 1, 1).expand(len(x), 2, *x.shape[2:])
        return to_rgb(torch.cat([y, chroma], dim=1), "ycbcr")


class ClassicalDenoiser(Baseline):
    """One classical denoiser applied to each example: NLM or TV for images, spectral gating for audio clips."""

    reconstructs = True
    METHODS = {"nl_means": "image", "tv": "image", "spectral_gate": "signal"}  # method -> the data it takes

    def __init__(self, method: str = "nl_means", factors: tuple[float, ...] = (0.4, 0.6, 0.8, 1.0, 1.3),
                 tune_images: int = 300, sample_rate: int | None = None, **common: Any) -> None:
        super().__init__(**common)
        if method not in self.METHODS:
            raise ConfigError(f"baseline/denoiser: model.method must be one of {', '.join(self.METHODS)}, got {method!r}")
        self.method, self.factors, self.tune_images = method, tuple(factors), tune_images
        self.sample_rate, self.factor = sample_rate, self.factors[0]
        feature = f"model=baseline/denoiser model.method={method}"
        if method == "spectral_gate":
            require("noisereduce", feature)
        else:
            require("skimage.restoration", feature)
            require("pywt", feature)  # estimate_sigma's wavelet transform

    def _denoise(self, example: np.ndarray, factor: float) -> np.ndarray:
        """One example (C, H, W) or (C, L) -> its denoised copy."""
        if self.method == "spectral_gate":
            import noisereduce

            return noisereduce.reduce_noise(y=example, sr=self.sample_rate, stationary=True, prop_decrease=factor)
        from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, estimate_sigma

        hwc = np.moveaxis(example, 0, -1)  # (C, H, W) -> (H, W, C)
        sigma = float(estimate_sigma(hwc, channel_axis=-1, average_sigmas=True))
        if self.method == "tv":
            out = denoise_tv_chambolle(hwc, weight=max(factor * sigma, 1e-6), channel_axis=-1)
        else:
            out = denoise_nl_means(hwc, h=factor * sigma, sigma=sigma, fast_mode=True, patch_size=5,
                                   patch_distance=6, channel_axis=-1)
        return np.moveaxis(out.reshape(hwc.shape), -1, 0)

    def _apply(self, x: np.ndarray, factor: float) -> np.ndarray:
        return np.stack([self._denoise(example, factor) for example in x])

    def fit(self, x: np.ndarray, target: np.ndarray) -> None:
        if data_kind(self.in_shape) != self.METHODS[self.method]:
            raise ConfigError(f"baseline/denoiser: method {self.method} takes {self.METHODS[self.method]} data, got "
                              f"data.shape={self.in_shape}")
        n = min(self.tune_images, len(x))
        noisy, clean = x[:n].reshape(n, *self.in_shape), target[:n].reshape(n, *self.in_shape)
        mse = {f: float(((self._apply(noisy, f) - clean) ** 2).mean()) for f in self.factors}
        self.factor = min(mse, key=mse.get)
        log.info("%s: factor %.2g chosen on %d training pairs (MSE by factor: %s)", self.method, self.factor, n,
                 ", ".join(f"{f:g}: {m:.4g}" for f, m in mse.items()))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        out = self._apply(x.detach().cpu().double().numpy(), self.factor)
        return torch.from_numpy(out).to(x)
