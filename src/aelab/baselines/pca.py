"""Exact PCA (scikit-learn, full SVD): the optimum of a linear autoencoder at the same code size (Baldi & Hornik
1989) and the reference of Hinton & Salakhutdinov (2006, Science), Fig. 2."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA

from aelab.baselines.base import Baseline, as_numpy


class PCABaseline(Baseline):
    """Code = projection on the top-`latent_dim` principal directions of the train split; decode = back-projection."""

    reconstructs = True

    def fit(self, x: np.ndarray, target: np.ndarray) -> None:
        self.pca = PCA(n_components=self.latent_dim, svd_solver="full").fit(x)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.pca.transform(as_numpy(x))).float()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        flat = self.pca.inverse_transform(z.detach().cpu().double().numpy())  # (B, d) -> (B, D)
        return torch.from_numpy(flat).float().view(len(z), *self.in_shape)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def anomaly_scores(self, x: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"recon": (self.reconstruct(x) - target).pow(2).flatten(1).sum(1)}
