"""Linear-probe and k-NN accuracy of frozen codes (Alain & Bengio 2016, "Understanding intermediate layers using
linear classifier probes"; k-NN evaluation as in Wu et al. 2018, "Unsupervised feature learning via non-parametric
instance discrimination")."""

from __future__ import annotations

from typing import Union

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from aelab.core.errors import ConfigError

ArrayLike = Union[np.ndarray, torch.Tensor]


def to_numpy(a: ArrayLike) -> np.ndarray:
    """A numpy view of an array or a (possibly CUDA, possibly grad-tracking) tensor."""
    if isinstance(a, torch.Tensor):
        return np.asarray(a.detach().cpu())
    return np.asarray(a)


def _codes_labels(z: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Codes flattened to (N, D) and labels to (N,); a ConfigError when the counts differ."""
    z_np, y_np = to_numpy(z), to_numpy(y).reshape(-1)
    z_np = z_np.reshape(len(z_np), -1)  # (N, ...) -> (N, D)
    if len(z_np) != len(y_np):
        raise ConfigError(f"probe got {len(z_np)} codes but {len(y_np)} labels")
    return z_np, y_np


def _check_train(y_train: np.ndarray) -> None:
    """A classifier needs at least two classes among the training labels."""
    if len(np.unique(y_train)) < 2:
        raise ConfigError(f"probe needs at least 2 classes in the training labels, got only {np.unique(y_train).tolist()}")


def probe_accuracy(z_train: ArrayLike, y_train: ArrayLike, z_test: ArrayLike, y_test: ArrayLike,
                   max_iter: int = 1000) -> float:
    """Test accuracy of a standardised logistic-regression probe fit on the training codes."""
    z_tr, y_tr = _codes_labels(z_train, y_train)
    z_te, y_te = _codes_labels(z_test, y_test)
    _check_train(y_tr)
    probe = Pipeline([("scale", StandardScaler()), ("logreg", LogisticRegression(max_iter=max_iter))])
    probe.fit(z_tr, y_tr)
    return float(probe.score(z_te, y_te))


def knn_accuracy(z_train: ArrayLike, y_train: ArrayLike, z_test: ArrayLike, y_test: ArrayLike, k: int = 5) -> float:
    """Test accuracy of a k-nearest-neighbour classifier over the training codes."""
    z_tr, y_tr = _codes_labels(z_train, y_train)
    z_te, y_te = _codes_labels(z_test, y_test)
    _check_train(y_tr)
    if k < 1 or k > len(z_tr):
        raise ConfigError(f"knn k must be between 1 and the number of training codes ({len(z_tr)}), got {k}")
    return float(KNeighborsClassifier(n_neighbors=k).fit(z_tr, y_tr).score(z_te, y_te))


def mlp_accuracy(z_train: ArrayLike, y_train: ArrayLike, z_test: ArrayLike, y_test: ArrayLike, hidden: list[int],
                 seed: int = 0) -> float:
    """Test accuracy of a standardised ReLU MLP probe (Adam, early stopping on 10% of the training codes)."""
    z_tr, y_tr = _codes_labels(z_train, y_train)
    z_te, y_te = _codes_labels(z_test, y_test)
    _check_train(y_tr)
    mlp = MLPClassifier(hidden_layer_sizes=tuple(hidden), early_stopping=True, random_state=seed, max_iter=200)
    probe = Pipeline([("scale", StandardScaler()), ("mlp", mlp)])
    return float(probe.fit(z_tr, y_tr).score(z_te, y_te))
