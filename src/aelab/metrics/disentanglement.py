"""Disentanglement of codes against known discrete generative factors.

MIG: Chen et al. 2018, "Isolating sources of disentanglement in variational autoencoders" (beta-TCVAE), sec. 4.1.
DCI: Eastwood & Williams 2018, "A framework for the quantitative evaluation of disentangled representations";
importances from gradient-boosted trees as in Locatello et al. 2019 (disentanglement_lib).
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import mutual_info_score

from aelab.core.errors import ConfigError
from aelab.metrics.probe import ArrayLike, to_numpy

log = logging.getLogger(__name__)


def _codes_factors(codes: ArrayLike, factors: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Codes as float (N, D) and factors as int (N, K); ConfigError on mismatched counts or D < 2."""
    c, f = to_numpy(codes).astype(np.float64), to_numpy(factors)
    c, f = c.reshape(len(c), -1), f.reshape(len(f), -1)  # (N, ...) -> (N, D) and (N, K)
    if len(c) != len(f) or c.shape[1] < 2:
        raise ConfigError(f"disentanglement metrics need (N, D>=2) codes and (N, K) factors, got {c.shape} and {f.shape}")
    return c, f.astype(np.int64)


def _discretize(codes: np.ndarray, bins: int) -> np.ndarray:
    """Each column of (N, D) codes mapped to the index (0..bins-1) of its equal-width bin."""
    out = np.empty(codes.shape, dtype=np.int64)
    for i, col in enumerate(codes.T):
        edges = np.histogram_bin_edges(col, bins=bins)
        out[:, i] = np.digitize(col, edges[1:-1])  # interior edges only: values land in 0..bins-1
    return out


def mig(codes: ArrayLike, factors: ArrayLike, bins: int = 20) -> float:
    """Mean over factors of (top - second) MI(code_i; v_k) / H(v_k) across code dims; constant factors skipped."""
    c, f = _codes_factors(codes, factors)
    binned = _discretize(c, bins)
    gaps = []
    for k, v in enumerate(f.T):
        h = mutual_info_score(v, v)  # H(v_k) in nats
        if h <= 0:
            log.debug("mig: factor %d is constant, skipped", k)
            continue
        mi = np.sort([mutual_info_score(v, b) for b in binned.T])[::-1] / h  # (D,), descending
        gaps.append(mi[0] - mi[1])
    if not gaps:
        raise ConfigError("mig needs at least one factor that takes more than one value")
    return float(np.mean(gaps))


def _one_minus_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """1 - H(p_row) / log(base) for each row of a (R, C) matrix of distributions."""
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return 1.0 + plogp.sum(axis=1) / np.log(base)


def _normalize_rows(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `r` divided by their sums (zero rows stay zero) and the row sums."""
    sums = r.sum(axis=1)
    return np.divide(r, sums[:, None], out=np.zeros_like(r), where=sums[:, None] > 0), sums


def importance_matrix(codes: np.ndarray, factors: np.ndarray, seed: int = 0,
                      n_estimators: int = 30) -> tuple[np.ndarray, float]:
    """(D, K) importances from one gradient-boosted classifier per factor, and their mean test accuracy."""
    n = len(codes)
    order = np.random.default_rng(seed).permutation(n)
    train, test = order[: int(0.8 * n)], order[int(0.8 * n):]
    importance, accuracy = np.zeros((codes.shape[1], factors.shape[1])), []
    for k, v in enumerate(factors.T):
        if len(np.unique(v[train])) < 2 or len(test) == 0:
            raise ConfigError(f"dci: factor {k} takes a single value in the training split (or no test split); "
                              f"pass more examples or drop that factor")
        model = GradientBoostingClassifier(n_estimators=n_estimators, random_state=seed)
        model.fit(codes[train], v[train])
        importance[:, k] = np.abs(model.feature_importances_)
        accuracy.append(model.score(codes[test], v[test]))
    return importance, float(np.mean(accuracy))


def dci(codes: ArrayLike, factors: ArrayLike, seed: int = 0, n_estimators: int = 30) -> dict[str, float]:
    """Disentanglement, completeness and informativeness of codes w.r.t. factors (needs D >= 2 and K >= 2)."""
    c, f = _codes_factors(codes, factors)
    if f.shape[1] < 2:
        raise ConfigError(f"dci needs at least 2 factors (entropies use log base K), got {f.shape[1]}")
    r, informativeness = importance_matrix(c, f, seed=seed, n_estimators=n_estimators)  # (D, K)
    p_dims, dim_mass = _normalize_rows(r)  # p_ij = R_ij / sum_j R_ij
    rho = dim_mass / max(r.sum(), 1e-12)  # weight of code dim i; 0 for a dim no classifier used
    disentanglement = float(np.sum(rho * np.where(dim_mass > 0, _one_minus_entropy(p_dims, f.shape[1]), 0.0)))
    p_factors, factor_mass = _normalize_rows(r.T)  # (K, D): p_ij = R_ij / sum_i R_ij
    per_factor = np.where(factor_mass > 0, _one_minus_entropy(p_factors, c.shape[1]), 0.0)
    return {"disentanglement": disentanglement, "completeness": float(per_factor.mean()),
            "informativeness": informativeness}
