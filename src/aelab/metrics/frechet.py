"""Frechet distance between Gaussians fitted to two feature sets, with a small trained feature classifier.

d^2 = ||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2))  (Heusel et al. 2017, "GANs trained by a two
time-scale update rule converge to a local Nash equilibrium", the FID). Here the features come from a small
classifier trained on the dataset at hand instead of Inception-v3, so distances are comparable within a dataset only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import nn

from aelab.core.errors import CheckpointError, ConfigError
from aelab.core.files import save_atomic
from aelab.metrics.probe import ArrayLike, to_numpy

log = logging.getLogger(__name__)


def frechet_distance(a: ArrayLike, b: ArrayLike) -> float:
    """Squared Frechet distance between N(mu_a, C_a) and N(mu_b, C_b) fitted to (N, F) features, in float64."""
    a64, b64 = (to_numpy(v).astype(np.float64).reshape(len(v), -1) for v in (a, b))  # (N, ...) -> (N, F)
    if min(len(a64), len(b64)) < 2 or a64.shape[1] != b64.shape[1]:
        raise ConfigError(f"frechet_distance needs two (N>=2, F) sets of equal F, got {a64.shape} and {b64.shape}")
    mu_a, mu_b = a64.mean(0), b64.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a64, rowvar=False)), np.atleast_2d(np.cov(b64, rowvar=False))  # (F, F)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():  # singular product: offset both diagonals, as in the reference FID code
        eps = 1e-6 * np.eye(len(cov_a))
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    d2 = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(np.real(covmean))
    return float(max(d2, 0.0))  # round-off can leave -1e-12 for identical sets


class FeatureClassifier(nn.Module):
    """Small classifier whose penultimate `feature_dim` activations serve as Frechet features."""

    def __init__(self, shape: list[int] | tuple[int, ...], num_classes: int, feature_dim: int = 64) -> None:
        super().__init__()
        self.shape, self.num_classes, self.feature_dim = [int(s) for s in shape], int(num_classes), int(feature_dim)
        if len(self.shape) == 3:
            if min(self.shape[1:]) < 8:
                raise ConfigError(f"FeatureClassifier needs images of at least 8x8, got shape {self.shape}")
            c = self.shape[0]
            self.body = nn.Sequential(  # (B, C, H, W) -> (B, 64, H/4, W/4) -> (B, 64)
                nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten())
            body_dim = 64
        elif len(self.shape) == 1:
            self.body = nn.Sequential(nn.Linear(self.shape[0], 256), nn.ReLU())  # (B, F) -> (B, 256)
            body_dim = 256
        else:
            raise ConfigError(f"FeatureClassifier takes (C, H, W) images or (F,) vectors, got shape {self.shape}")
        self.penultimate = nn.Sequential(nn.Linear(body_dim, self.feature_dim), nn.ReLU())
        self.head = nn.Linear(self.feature_dim, self.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (B, feature_dim)."""
        return self.penultimate(self.body(x.reshape(len(x), *self.shape)))  # (B, ...) -> (B, *shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes)."""
        return self.head(self.features(x))


def _tensors(x: ArrayLike, y: ArrayLike | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Float inputs and long labels as tensors."""
    xt = torch.as_tensor(to_numpy(x) if not isinstance(x, torch.Tensor) else x).float()
    yt = None if y is None else torch.as_tensor(to_numpy(y)).long().reshape(-1).to(xt.device)
    return xt, yt


def train_feature_classifier(x: ArrayLike, y: ArrayLike, shape: list[int] | tuple[int, ...], num_classes: int,
                             epochs: int = 3, batch_size: int = 256, lr: float = 1e-3, seed: int = 0) -> FeatureClassifier:
    """Adam + cross entropy for `epochs`; deterministic given `seed` (the global RNG is left untouched)."""
    xt, yt = _tensors(x, y)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FeatureClassifier(shape, num_classes).to(xt.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(xt), generator=gen).to(xt.device)
        for idx in order.split(batch_size):
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        log.debug("feature classifier epoch %d: last batch loss %.4f", epoch, loss.item())
    return model.eval()


@torch.no_grad()
def features(model: FeatureClassifier, x: ArrayLike, batch_size: int = 1000) -> torch.Tensor:
    """Penultimate features (N, feature_dim) of `model`, computed in batches."""
    xt = _tensors(x)[0].to(next(model.parameters()).device)
    model.eval()
    if len(xt) == 0:
        return torch.empty(0, model.feature_dim)
    return torch.cat([model.features(chunk) for chunk in xt.split(batch_size)])  # (N, feature_dim)


@torch.no_grad()
def classifier_accuracy(model: FeatureClassifier, x: ArrayLike, y: ArrayLike, batch_size: int = 1000) -> float:
    """Fraction of `x` that `model` classifies as `y`."""
    device = next(model.parameters()).device
    xt, yt = (t.to(device) for t in _tensors(x, y))
    model.eval()
    hits = sum(int((model(xc).argmax(1) == yc).sum()) for xc, yc in zip(xt.split(batch_size), yt.split(batch_size)))
    return hits / max(len(xt), 1)


def _load(path: Path) -> dict[str, Any]:
    """A cached classifier file read with weights_only=True; CheckpointError for anything unsafe or corrupt."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle.UnpicklingError for unsafe globals; RuntimeError/EOFError for corrupt files
        raise CheckpointError(f"feature classifier {path} is unreadable or unsafe for weights_only loading "
                              f"({type(err).__name__}); delete it to retrain") from err
    if not isinstance(blob, dict) or "state_dict" not in blob:
        raise CheckpointError(f"feature classifier {path} holds no 'state_dict'; delete it to retrain")
    return blob


def cached_feature_classifier(path: str | Path, x: ArrayLike, y: ArrayLike, shape: list[int] | tuple[int, ...],
                              num_classes: int, x_test: ArrayLike | None = None, y_test: ArrayLike | None = None,
                              **train_kwargs: Any) -> tuple[FeatureClassifier, float | None]:
    """The classifier stored at `path` with its test accuracy, else a freshly trained one saved there atomically."""
    path = Path(path)
    if path.exists():
        blob = _load(path)
        if list(blob.get("shape", [])) != [int(s) for s in shape] or blob.get("num_classes") != num_classes:
            raise CheckpointError(f"feature classifier {path} is for shape {blob.get('shape')} with "
                                  f"{blob.get('num_classes')} classes, not {list(shape)} with {num_classes}")
        model = FeatureClassifier(blob["shape"], blob["num_classes"], blob.get("feature_dim", 64))
        model.load_state_dict(blob["state_dict"])
        log.info("loaded feature classifier from %s", path)
        return model.eval(), blob.get("test_accuracy")
    model = train_feature_classifier(x, y, shape, num_classes, **train_kwargs)
    acc = None if x_test is None or y_test is None else classifier_accuracy(model, x_test, y_test)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "shape": model.shape,
            "num_classes": model.num_classes, "feature_dim": model.feature_dim, "test_accuracy": acc}
    save_atomic(blob, path)
    log.info("trained feature classifier saved to %s (test accuracy %s)", path,
             "n/a" if acc is None else f"{acc:.4f}")
    return model, acc
