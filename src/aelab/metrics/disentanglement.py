"""Disentanglement of codes against known discrete generative factors.

MIG: Chen et al. 2018, "Isolating sources of disentanglement in variational autoencoders" (beta-TCVAE), sec. 4.1.
DCI: Eastwood & Williams 2018, "A framework for the quantitative evaluation of disentangled representations";
importances from gradient-boosted trees as in Locatello et al. 2019 (disentanglement_lib).
BetaVAE score: Higgins et al. 2017, "beta-VAE: learning basic visual concepts with a constrained variational
framework", sec. 3. FactorVAE score: Kim & Mnih 2018, "Disentangling by factorising", sec. 4.
SAP: Kumar et al. 2018, "Variational inference of disentangled latent concepts from unlabeled observations", sec. 3.
Modularity and explicitness: Ridgeway & Mozer 2018, "Learning deep disentangled embeddings with the F-statistic
loss", sec. 3. All five follow disentanglement_lib (Locatello et al. 2019, "Challenging common assumptions in the
unsupervised learning of disentangled representations"), computed on a pool of (code, factors) examples (a full
factor grid or a uniform share of it) instead of a simulator: a batch with factor k fixed is drawn from the pool's
examples that share one value of k.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.multiclass import OneVsRestClassifier

from aelab.core.errors import ConfigError, positive_int
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


# ---- the pool: train/test splits and batches with one factor fixed -------------------------------------------
def _split(n: int, rng: np.random.Generator, train_share: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """A random train/test split of n pool indices."""
    order = rng.permutation(n)
    return order[: int(train_share * n)], order[int(train_share * n):]


def _standardize(codes: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Codes centred and scaled by the train split's mean and std (constant dims only centred)."""
    std = codes[train].std(axis=0)
    return (codes - codes[train].mean(axis=0)) / np.where(std > 0, std, 1.0)


def _fixed_factor_draws(factors: np.ndarray, pool: np.ndarray, labels: np.ndarray, anchors: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
    """Pool indices (n, L): entry (i, l) drawn uniformly among the pool's examples whose factor labels[i] equals
    that of the example at position anchors[i, l] of the pool (possibly that example itself)."""
    draws = np.empty(anchors.shape, dtype=np.int64)
    for k in np.unique(labels):
        rows = labels == k
        column = factors[pool, k]  # (P,) the factor's value for each pool example
        order = np.argsort(column, kind="stable")
        values, starts, counts = np.unique(column[order], return_index=True, return_counts=True)
        group = np.searchsorted(values, column[anchors[rows]])  # (n_k, L) which value each anchor has
        draws[rows] = pool[order[starts[group] + rng.integers(0, counts[group])]]
    return draws


def _check_batches(batch_size: int, n_train: int, n_eval: int) -> None:
    for key, value in (("batch_size", batch_size), ("n_train", n_train), ("n_eval", n_eval)):
        positive_int(key, value)
    if batch_size < 2:
        raise ConfigError(f"batch_size must be at least 2 (a batch needs two examples to vary), got {batch_size}")


def _beta_vae_features(c: np.ndarray, f: np.ndarray, pool: np.ndarray, n: int, size: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n features (n, D): the mean |z1 - z2| over `size` pairs that share the value of factor labels[i]."""
    labels = rng.integers(f.shape[1], size=n)
    anchors = rng.integers(len(pool), size=(n, size))  # (n, L) positions in the pool
    partners = _fixed_factor_draws(f, pool, labels, anchors, rng)  # (n, L) pool indices
    return np.abs(c[pool[anchors]] - c[partners]).mean(axis=1), labels  # (n, L, D) -> (n, D)


def beta_vae_score(codes: ArrayLike, factors: ArrayLike, seed: int = 0, batch_size: int = 64, n_train: int = 10000,
                   n_eval: int = 5000) -> float:
    """Held-out accuracy of a logistic regression that tells, from the mean |z1 - z2| over a batch of pairs sharing
    one factor's value (a value per pair), which factor was shared; chance 1/K."""
    c, f = _codes_factors(codes, factors)
    _check_batches(batch_size, n_train, n_eval)
    rng = np.random.default_rng(seed)
    train, test = _split(len(c), rng)
    x_train, y_train = _beta_vae_features(c, f, train, n_train, batch_size, rng)
    x_eval, y_eval = _beta_vae_features(c, f, test, n_eval, batch_size, rng)
    if len(np.unique(y_train)) < 2:
        raise ConfigError(f"beta_vae_score: n_train={n_train} batches fixed a single factor; pass more")
    model = LogisticRegression(max_iter=1000).fit(x_train, y_train)
    return float(model.score(x_eval, y_eval))


def _factor_vae_votes(c: np.ndarray, f: np.ndarray, pool: np.ndarray, scale: np.ndarray, n: int, size: int,
                      rng: np.random.Generator) -> np.ndarray:
    """(K, D') counts of (fixed factor, active dim of least normalised variance) over n batches of `size`."""
    labels = rng.integers(f.shape[1], size=n)
    anchors = np.repeat(rng.integers(len(pool), size=(n, 1)), size, axis=1)  # (n, L): one value per batch
    members = _fixed_factor_draws(f, pool, labels, anchors, rng)  # (n, L) pool indices
    local = c[members].var(axis=1, ddof=1) / scale  # (n, L, D') -> (n, D')
    votes = np.zeros((f.shape[1], c.shape[1]), dtype=np.int64)
    np.add.at(votes, (labels, local.argmin(axis=1)), 1)
    return votes


def factor_vae_score(codes: ArrayLike, factors: ArrayLike, seed: int = 0, batch_size: int = 64, n_train: int = 10000,
                     n_eval: int = 5000, prune_threshold: float = 0.05) -> float:
    """Held-out accuracy of the majority-vote classifier from 'code dim of least variance, normalised by its pool
    variance, in a batch with one factor fixed' to that factor; dims of pool std < prune_threshold dropped; chance 1/K."""
    c, f = _codes_factors(codes, factors)
    _check_batches(batch_size, n_train, n_eval)
    rng = np.random.default_rng(seed)
    variance = c.var(axis=0, ddof=1)  # (D,) over the whole pool
    active = np.sqrt(variance) >= prune_threshold
    if not active.any():
        log.warning("factor_vae_score: every code dim has std < %g (collapsed); scored 0", prune_threshold)
        return 0.0
    c, variance = c[:, active], variance[active]
    train, test = _split(len(c), rng)
    train_votes = _factor_vae_votes(c, f, train, variance, n_train, batch_size, rng)  # (K, D')
    eval_votes = _factor_vae_votes(c, f, test, variance, n_eval, batch_size, rng)
    factor_of_dim = train_votes.argmax(axis=0)  # (D',) the majority vote of each dim
    return float(eval_votes[factor_of_dim, np.arange(c.shape[1])].sum() / eval_votes.sum())


# ---- predictors and information on the codes -----------------------------------------------------------------
def _train_test(f: np.ndarray, seed: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split whose train part holds two values of every factor (a classifier needs two classes)."""
    train, test = _split(len(f), np.random.default_rng(seed))
    for k, v in enumerate(f.T):
        if len(np.unique(v[train])) < 2 or len(test) == 0:
            raise ConfigError(f"{metric}: factor {k} takes a single value in the training split (or no test split); "
                              f"pass more examples or drop that factor")
    return train, test


def sap(codes: ArrayLike, factors: ArrayLike, seed: int = 0) -> float:
    """Mean over factors of the gap between the two code dims whose one-dim classifier (multinomial logistic
    regression) predicts the factor best on the test split."""
    c, f = _codes_factors(codes, factors)
    train, test = _train_test(f, seed, "sap")
    z = _standardize(c, train)
    accuracy = np.zeros((c.shape[1], f.shape[1]))  # (D, K)
    for d in range(c.shape[1]):
        for k in range(f.shape[1]):
            model = LogisticRegression().fit(z[train, d:d + 1], f[train, k])
            accuracy[d, k] = model.score(z[test, d:d + 1], f[test, k])
    top = np.sort(accuracy, axis=0)  # ascending over dims
    return float(np.mean(top[-1] - top[-2]))


def modularity(codes: ArrayLike, factors: ArrayLike, bins: int = 20) -> float:
    """Mean over code dims of 1 - sum_{k != k*} MI_k^2 / (MI_k*^2 (K - 1)), MI of the binned dim with each factor;
    0 for a dim that carries no information."""
    c, f = _codes_factors(codes, factors)
    if f.shape[1] < 2:
        raise ConfigError(f"modularity needs at least 2 factors, got {f.shape[1]}")
    binned = _discretize(c, bins)
    squared = np.array([[mutual_info_score(v, b) for v in f.T] for b in binned.T]) ** 2  # (D, K)
    top = squared.max(axis=1)
    deviation = np.divide(squared.sum(axis=1) - top, top * (f.shape[1] - 1), out=np.ones_like(top), where=top > 0)
    return float(np.mean(1.0 - deviation))


def explicitness(codes: ArrayLike, factors: ArrayLike, seed: int = 0) -> float:
    """Mean over factors and their values of the test ROC AUC of one-vs-rest logistic regressions on all codes."""
    c, f = _codes_factors(codes, factors)
    train, test = _train_test(f, seed, "explicitness")
    z = _standardize(c, train)
    per_factor = []
    for v in f.T:
        model = OneVsRestClassifier(LogisticRegression()).fit(z[train], v[train])
        proba = model.predict_proba(z[test])  # (N_test, values)
        aucs = [roc_auc_score(v[test] == value, proba[:, j]) for j, value in enumerate(model.classes_)
                if 0 < np.sum(v[test] == value) < len(test)]  # values absent from the test split are skipped
        per_factor.append(np.mean(aucs))
    return float(np.mean(per_factor))
