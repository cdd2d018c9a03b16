"""Improved precision and recall for generative models (Kynkaanniemi et al. 2019, NeurIPS), in any feature space.

Each set's manifold is the union of balls around its points, each ball's radius the distance to that point's k-th
nearest neighbour in its own set. Precision = share of generated points inside the real manifold (how many samples
look real); recall = share of real points inside the generated manifold (how much of the data the samples cover).
"""

from __future__ import annotations

import torch
from sklearn.neighbors import NearestNeighbors

from aelab.core.errors import ConfigError
from aelab.metrics.probe import ArrayLike, to_numpy


def knn_radii(points: torch.Tensor, k: int) -> torch.Tensor:
    """Distance (N,) of each point to its k-th nearest neighbour among the others (scikit-learn's exact k-NN)."""
    neighbours = NearestNeighbors(n_neighbors=k + 1).fit(points.numpy())  # +1: each point is its own nearest
    distances, _ = neighbours.kneighbors(points.numpy())
    return torch.from_numpy(distances[:, k]).to(points.dtype)


def coverage(queries: torch.Tensor, points: torch.Tensor, radii: torch.Tensor, chunk: int = 1000) -> float:
    """Share of queries (M, F) within radii (N,) of at least one of points (N, F)."""
    inside = [(torch.cdist(q, points) <= radii).any(dim=1) for q in queries.split(chunk)]  # (chunk, N) -> (chunk,)
    return float(torch.cat(inside).double().mean())


def precision_recall(real: ArrayLike, fake: ArrayLike, k: int = 3) -> dict[str, float]:
    """`precision` and `recall` of fake (M, F) against real (N, F) features, k-NN radii with k neighbours."""
    r, f = (torch.as_tensor(to_numpy(v)).double().reshape(len(v), -1) for v in (real, fake))  # (N, ...) -> (N, F)
    if min(len(r), len(f)) <= k or r.shape[1] != f.shape[1]:
        raise ConfigError(f"precision/recall with k={k} needs two sets of more than k points of equal width, "
                          f"got {tuple(r.shape)} and {tuple(f.shape)}")
    return {"precision": coverage(f, r, knn_radii(r, k)), "recall": coverage(r, f, knn_radii(f, k))}
