"""A linear autoencoder reaches PCA's reconstruction error at the same latent size (Baldi & Hornik 1989)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA

from aelab.commands.train import train
from aelab.core.build import build
from helpers import FAST, compose_cfg

pytestmark = pytest.mark.slow  # every test here starts a CLI process or a training run

LATENT = 8


def test_linear_ae_matches_pca_on_digits(tmp_path: Path) -> None:
    overrides = [*FAST, "model=linear_ae", f"model.latent_dim={LATENT}", "model.optimizer.lr=0.01",
                 "trainer.max_epochs=100", "logger=none", "callbacks.reconstructions=null", "callbacks.embeddings=null"]
    cfg = compose_cfg(overrides, tmp_path)
    ae_mse = train(cfg)["metrics"]["test/mse"]

    data = build(cfg.data)
    data.setup()
    x_train, x_test = data.train_set.x.flatten(1).numpy(), data.test_set.x.flatten(1).numpy()
    pca = PCA(n_components=LATENT).fit(x_train)
    pca_mse = float(np.mean((pca.inverse_transform(pca.transform(x_test)) - x_test) ** 2))
    # PCA is optimal on the train set, not on the test set: the AE cannot beat it by more than noise
    assert abs(ae_mse - pca_mse) / pca_mse < 0.02, (ae_mse, pca_mse)
