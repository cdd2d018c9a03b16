"""Compression against PCA (Hinton & Salakhutdinov 2006, Fig. 2): the model's test MSE over exact PCA's at the
same code size, PCA fitted (scikit-learn, full SVD) on the same train split. A linear autoencoder's ratio is
at least 1 (Baldi & Hornik 1989); a deep one can go below."""

from __future__ import annotations

from pathlib import Path

import torch
from sklearn.decomposition import PCA

from aelab.data.base import InMemoryDataModule
from aelab.evals.base import Evaluation, Evaluator, batched
from aelab.models.api import Autoencoder


def pca_test_mse(train: torch.Tensor, test: torch.Tensor, d: int) -> float:
    """Mean squared error over all test values of the rank-d PCA reconstruction fitted on the train rows."""
    tr, te = train.flatten(1).double().numpy(), test.flatten(1).double().numpy()  # (N, *shape) -> (N, D)
    pca = PCA(n_components=d, svd_solver="full").fit(tr)
    return float(((pca.inverse_transform(pca.transform(te)) - te) ** 2).mean())


class PCARatio(Evaluator):
    """`test/pca_mse` (exact PCA at the model's code size) and `test/mse_ratio_pca` (the model's test MSE / it)."""

    higher_is_better = {"pca_mse": False, "mse_ratio_pca": False}

    def __call__(self, model: Autoencoder, data: InMemoryDataModule, out_dir: Path) -> Evaluation:
        test = data.whole("test")
        train = data.whole("train")["target"]
        d = batched(model.encode, test["x"][:1], device=model.device).shape[1]
        recon = batched(model.reconstruct, test["x"], device=model.device)
        mse = float((recon - test["target"]).double().pow(2).mean())
        reference = pca_test_mse(train, test["target"], d)
        return Evaluation(metrics={"test/mse_ratio_pca": mse / reference, "test/pca_mse": reference},
                          notes=[f"PCA({d}) fitted on {len(train)} train examples"])
