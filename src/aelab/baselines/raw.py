"""Raw pixels as the code: the probes of Xiao et al. (2017, Fashion-MNIST, Table 3) and the one-class SVM of
Schölkopf et al. (2001) on raw pixels (RAW-OC-SVM in Golan & El-Yaniv 2018)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.svm import OneClassSVM

from aelab.baselines.base import Baseline, as_numpy


class RawPixels(Baseline):
    """The flattened input is the code; nothing to fit. Probes on it are probes on raw pixels."""

    def fit(self, x: np.ndarray, target: np.ndarray) -> None:
        return None


class RawOneClassSVM(Baseline):
    """RBF one-class SVM on raw pixels. gamma by the median heuristic (1 / median squared distance between train
    examples) and a fixed nu: chosen without any label, where the published baselines chose them on the test set."""

    def __init__(self, nu: float = 0.1, median_pairs: int = 2000, seed: int = 0, **common: Any) -> None:
        super().__init__(**common)
        self.nu, self.median_pairs, self.seed = nu, median_pairs, seed
        self.svm: OneClassSVM | None = None

    def fit(self, x: np.ndarray, target: np.ndarray) -> None:
        rng = np.random.default_rng(self.seed)
        sub = x[rng.choice(len(x), size=min(self.median_pairs, len(x)), replace=False)]
        sq = (sub**2).sum(1)
        d2 = sq[:, None] + sq[None, :] - 2 * sub @ sub.T  # (n, n) squared distances
        gamma = 1.0 / float(np.median(d2[np.triu_indices(len(sub), k=1)]))
        self.svm = OneClassSVM(kernel="rbf", nu=self.nu, gamma=gamma, cache_size=1000).fit(x)

    def anomaly_scores(self, x: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"ocsvm": torch.from_numpy(-self.svm.decision_function(as_numpy(x))).float()}  # higher = more anomalous
