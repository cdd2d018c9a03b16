"""Probe, Frechet and disentanglement metrics against answers known in closed form or by construction."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from aelab.core.errors import CheckpointError, ConfigError
from aelab.metrics.disentanglement import dci, mig
from aelab.metrics.frechet import (
    FeatureClassifier,
    cached_feature_classifier,
    classifier_accuracy,
    features,
    frechet_distance,
    train_feature_classifier,
)
from aelab.metrics.probe import knn_accuracy, probe_accuracy

FAST_TRAIN = {"epochs": 5, "batch_size": 64, "lr": 3e-3}  # enough for 8x8 digits (1.4k examples)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny convs gain nothing from threads, and on a busy 2-core machine two OpenMP threads run 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def blobs(n: int, seed: int, gap: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Two balanced Gaussian blobs in 4-D whose centres are `gap` apart along every axis."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    return rng.normal(size=(n, 4)) + gap * y[:, None], y


def test_probe_and_knn_separate_blobs_perfectly() -> None:
    (z_tr, y_tr), (z_te, y_te) = blobs(400, 0), blobs(200, 1)
    assert probe_accuracy(z_tr, y_tr, torch.as_tensor(z_te), torch.as_tensor(y_te)) == 1.0
    assert knn_accuracy(torch.as_tensor(z_tr), y_tr, z_te, y_te, k=5) == 1.0


def test_probe_on_label_independent_codes_is_at_chance() -> None:
    (z_tr, y_tr), (z_te, y_te) = blobs(2000, 0, gap=0.0), blobs(2000, 1, gap=0.0)
    assert 0.3 < probe_accuracy(z_tr, y_tr, z_te, y_te) < 0.7


def test_probe_refuses_one_class_and_too_large_k() -> None:
    z, y = blobs(10, 0)
    with pytest.raises(ConfigError, match="2 classes"):
        probe_accuracy(z, np.zeros(10), z, y)
    with pytest.raises(ConfigError, match="knn k"):
        knn_accuracy(z, y, z, y, k=11)


def whitened(n: int, f: int, seed: int) -> np.ndarray:
    """(n, f) samples with sample mean exactly 0 and sample covariance (ddof=1) exactly I."""
    z = np.random.default_rng(seed).normal(size=(n, f))
    z -= z.mean(0)
    chol = np.linalg.cholesky(z.T @ z / (n - 1))
    return z @ np.linalg.inv(chol).T


def test_frechet_of_a_set_with_itself_is_zero() -> None:
    a = np.random.default_rng(0).normal(size=(500, 8)) * 3.0
    assert abs(frechet_distance(a, a)) < 1e-6 * np.trace(np.cov(a, rowvar=False))


def test_frechet_of_shifted_unit_gaussians_is_the_squared_shift() -> None:
    rng = np.random.default_rng(0)
    m = np.array([1.0, -2.0, 0.5, 2.0])
    d = frechet_distance(rng.normal(size=(20000, 4)), rng.normal(size=(20000, 4)) + m)
    assert d == pytest.approx(np.sum(m ** 2), rel=0.03)


def test_frechet_matches_closed_form_for_diagonal_gaussians() -> None:
    s_a, s_b = np.array([1.0, 2.0, 0.5]), np.array([3.0, 0.5, 0.5])
    m_a, m_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, -1.0])
    a, b = whitened(300, 3, 0) * s_a + m_a, whitened(400, 3, 1) * s_b + m_b
    expected = np.sum((m_a - m_b) ** 2) + np.sum((s_a - s_b) ** 2)  # Tr(Ca + Cb - 2 sqrt(Ca Cb)) for diagonal C
    assert frechet_distance(torch.as_tensor(a), b) == pytest.approx(expected, rel=1e-9)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, ...]:
    """scikit-learn's bundled 8x8 digits as (N, 1, 8, 8) in [0, 1], split 1400 / 397."""
    data = load_digits()
    x, y = (data.data / 16.0).reshape(-1, 1, 8, 8).astype(np.float32), data.target
    order = np.random.default_rng(0).permutation(len(x))
    tr, te = order[:1400], order[1400:]
    return x[tr], y[tr], x[te], y[te]


@pytest.fixture(scope="module")
def trained(digits: tuple[np.ndarray, ...],
            tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FeatureClassifier, float | None]:
    """One digits classifier, trained through the cache (the only training of a CNN in this file)."""
    x_tr, y_tr, x_te, y_te = digits
    path = tmp_path_factory.mktemp("cls") / "sub" / "digits.pt"
    model, acc = cached_feature_classifier(path, x_tr, y_tr, (1, 8, 8), 10, x_test=x_te, y_test=y_te, **FAST_TRAIN)
    return path, model, acc


def test_feature_classifier_learns_digits(digits: tuple[np.ndarray, ...], trained: tuple) -> None:
    _, _, x_te, y_te = digits
    _, model, acc = trained
    assert acc is not None and acc > 0.85 and classifier_accuracy(model, x_te, y_te) == acc
    assert not model.training and features(model, x_te, batch_size=100).shape == (len(x_te), 64)


def test_training_is_deterministic_given_the_seed_and_leaves_global_rng_alone() -> None:
    x, y = blobs(200, 0)
    state = torch.random.get_rng_state()
    a, b = (train_feature_classifier(x, y, (4,), 2, epochs=2, batch_size=32, seed=3) for _ in range(2))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_feature_classifier_on_vectors_gives_features_and_logits() -> None:
    model = FeatureClassifier([12], num_classes=3, feature_dim=16)
    x = torch.randn(5, 12)
    assert model.features(x).shape == (5, 16) and model(x).shape == (5, 3)


def test_cached_feature_classifier_loads_without_training(digits: tuple[np.ndarray, ...], trained: tuple) -> None:
    x_tr, y_tr, x_te, _ = digits
    path, first, acc = trained
    mtime = os.stat(path).st_mtime_ns
    second, acc2 = cached_feature_classifier(path, x_tr[:0], y_tr[:0], (1, 8, 8), 10)  # no data: must not train
    assert acc2 == acc and not second.training
    assert torch.equal(features(first, x_te), features(second, x_te))
    assert os.stat(path).st_mtime_ns == mtime and list(path.parent.iterdir()) == [path]  # no leftover tmp file
    with pytest.raises(CheckpointError, match="shape"):
        cached_feature_classifier(path, x_tr, y_tr, (1, 8, 8), 7)


class RunsCode:
    """Unpickling this would run a shell command; weights_only loading must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


def test_cached_feature_classifier_refuses_code_in_the_file(tmp_path: Path) -> None:
    path, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    torch.save({"state_dict": RunsCode(marker)}, path)
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        cached_feature_classifier(path, np.zeros((4, 3)), np.arange(4) % 2, (3,), 2)
    assert not marker.exists()


def factor_data(n: int = 5000, seed: int = 0) -> np.ndarray:
    """Three independent uniform factors with 5, 7 and 10 values, (n, 3) ints."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, v, n) for v in (5, 7, 10)], axis=1)


def test_mig_of_factors_themselves_is_near_one_and_of_noise_near_zero() -> None:
    f = factor_data()
    assert mig(f.astype(float), f) > 0.9
    assert mig(np.random.default_rng(1).normal(size=(len(f), 3)), f) < 0.1


def test_mig_drops_when_one_dim_mixes_two_factors() -> None:
    f = factor_data()
    mixed = np.stack([f[:, 0] + f[:, 1], f[:, 2], np.random.default_rng(1).normal(size=len(f))], axis=1)
    clean = mig(f.astype(float), f)
    assert mig(mixed, f) < clean - 0.3


def test_mig_needs_two_code_dims() -> None:
    f = factor_data(100)
    with pytest.raises(ConfigError):
        mig(f[:, :1].astype(float), f)


def test_dci_is_high_for_factors_and_lower_after_a_rotation() -> None:
    f = factor_data(1500)
    clean = dci(f.astype(float), f)
    assert min(clean.values()) > 0.9
    standardized = (f - f.mean(0)) / f.std(0)
    rotation = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))[0]
    rotated = dci(standardized @ rotation, f)
    assert rotated["disentanglement"] < clean["disentanglement"] - 0.3
    assert rotated["completeness"] < clean["completeness"] - 0.3


@pytest.mark.parametrize("shape,dtype", [((37, 1, 28, 28), torch.float32), ((6, 3, 32, 48), torch.float32),
                                         ((9, 1, 8, 8), torch.float64)])
def test_ssim_equals_torchmetrics(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    """aelab's SSIM (depthwise filtering) gives torchmetrics' numbers, accumulated over several batches."""
    from torchmetrics.image import StructuralSimilarityIndexMeasure

    from aelab.metrics.ssim import SSIM

    ours, theirs = SSIM(data_range=1.0).to(dtype), StructuralSimilarityIndexMeasure(data_range=1.0).to(dtype)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        target = torch.rand(shape, generator=gen, dtype=dtype)
        preds = (target + 0.2 * torch.randn(shape, generator=gen, dtype=dtype)).clamp(0, 1)
        ours.update(preds, target)
        theirs.update(preds, target)
    assert 0.1 < float(theirs.compute()) < 0.95
    torch.testing.assert_close(ours.compute(), theirs.compute(), rtol=0, atol=1e-6)


def test_ssim_of_an_image_with_itself_is_one_and_with_its_negative_below_zero() -> None:
    from aelab.metrics.ssim import ssim_per_image

    x = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ssim_per_image(x, x, 1.0), torch.ones(4), rtol=0, atol=1e-6)
    assert (ssim_per_image(1 - x, x, 1.0) < 0).all()  # negated structure: covariance < 0


def test_the_embedding_scatter_draws_a_validation_split_of_one_example(tmp_path) -> None:
    """A run whose validation split holds one example still draws its embedding (PCA of 2 components failed)."""
    import matplotlib.image
    import numpy as np

    from aelab.callbacks.embeddings import pca_scatter

    for n, d in [(1, 16), (40, 16), (3, 1)]:
        path = pca_scatter(np.random.default_rng(0).normal(size=(n, d)), np.zeros(n), tmp_path / f"{n}_{d}.png", "z")
        assert matplotlib.image.imread(path).shape[:2] == (500, 500)
