"""BetaVAE, FactorVAE, SAP, modularity and explicitness against answers known by construction: codes that are the
factors of a full factor grid, codes independent of them, and a rotation of the factor codes."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from aelab.core.build import build
from aelab.core.errors import ConfigError
from aelab.metrics.disentanglement import beta_vae_score, explicitness, factor_vae_score, mig, modularity, sap
from helpers import compose_cfg

VALUES = (3, 4, 5, 6)  # values per factor, K = 4
CHANCE = 1 / len(VALUES)
BATCHES = {"n_train": 2000, "n_eval": 2000}  # fewer than the evaluator's defaults: chance is still within +-0.05


def full_grid(repeats: int = 5) -> np.ndarray:
    """Every combination of VALUES `repeats` times, (360 * repeats, 4) ints."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in VALUES], indexing="ij"), axis=-1).reshape(-1, len(VALUES))
    return np.tile(grid, (repeats, 1))


@pytest.fixture(scope="module")
def codes() -> dict[str, np.ndarray]:
    """The factors as codes, noise independent of them, and a rotation of the standardised factors."""
    f = full_grid()
    standardized = (f - f.mean(0)) / f.std(0)
    rotation = np.linalg.qr(np.random.default_rng(2).normal(size=(4, 4)))[0]  # (4, 4) orthogonal
    return {"factors": f, "exact": f.astype(float), "noise": np.random.default_rng(1).normal(size=f.shape),
            "rotated": standardized @ rotation}


@pytest.mark.parametrize("score", [beta_vae_score, factor_vae_score])
def test_batch_scores_are_one_for_the_factors_and_chance_for_noise(score, codes: dict[str, np.ndarray]) -> None:
    """Factor codes: the fixed factor's dim is the only one that does not vary (|z1 - z2| = 0, variance 0), so
    both classifiers are exact (1.0). Noise: the batch says nothing about the fixed factor, chance 1/K = 0.25."""
    f = codes["factors"]
    assert score(codes["exact"], f, **BATCHES) == 1.0
    assert score(codes["noise"], f, **BATCHES) == pytest.approx(CHANCE, abs=0.05)


def test_factor_vae_prunes_collapsed_dims_and_scores_zero_without_active_dims(codes: dict[str, np.ndarray]) -> None:
    f = codes["factors"]
    collapsed = np.concatenate([codes["exact"], np.zeros((len(f), 3))], axis=1)  # 3 dims of std 0 < 0.05
    assert factor_vae_score(collapsed, f, **BATCHES) == 1.0  # a constant dim (variance 0) would win every vote
    assert factor_vae_score(np.full((len(f), 3), 2.0), f, **BATCHES) == 0.0


def test_sap_of_the_factors_is_the_chance_gap_and_of_noise_near_zero(codes: dict[str, np.ndarray]) -> None:
    """Factor codes: a one-dim classifier on the factor's own dim is exact (accuracy 1), the best other dim is
    independent of the factor (accuracy ~ 1/n_k), so SAP = mean_k (1 - 1/n_k) = (2/3 + 3/4 + 4/5 + 5/6) / 4 = 0.7625
    (the split of a finite grid puts the other dims a little below 1/n_k). Noise: the top two dims are both at
    chance, gap ~0."""
    f = codes["factors"]
    bound = float(np.mean([1 - 1 / n for n in VALUES]))
    assert bound == pytest.approx(0.7625)
    assert sap(codes["exact"], f) == pytest.approx(bound, abs=0.04)
    assert sap(codes["noise"], f) < 0.03


def test_modularity_of_the_factors_is_one_and_of_noise_is_set_by_the_mi_bias(codes: dict[str, np.ndarray]) -> None:
    """Factor codes: each dim shares information with its own factor only (the factors of a full grid are
    exactly independent), modularity 1. Noise: the plug-in MI of independent variables is biased by
    (bins - 1)(n_k - 1) / 2N (Miller-Madow), so MI_k is proportional to n_k - 1 = 2, 3, 4, 5 and
    modularity = 1 - (2^2 + 3^2 + 4^2) / (5^2 (K - 1)) = 1 - 29/75 = 0.613: noise looks modular."""
    f = codes["factors"]
    assert modularity(codes["exact"], f) == pytest.approx(1.0)
    assert modularity(codes["noise"], f) == pytest.approx(1 - 29 / 75, abs=0.06)


def test_explicitness_of_the_factors_is_one_and_of_noise_one_half(codes: dict[str, np.ndarray]) -> None:
    """Factor codes: ~1 (a middle value of a factor is an interval of its dim, which one linear one-vs-rest boundary
    cannot cut exactly; the normalised probabilities nearly recover it). Noise: AUC 0.5."""
    f = codes["factors"]
    assert explicitness(codes["exact"], f) > 0.995
    assert explicitness(codes["noise"], f) == pytest.approx(0.5, abs=0.03)


def test_a_rotation_lowers_mig_and_sap_but_not_explicitness(codes: dict[str, np.ndarray]) -> None:
    """An orthogonal mixing of the standardised factors spreads each factor over every dim (MIG and SAP fall) but
    keeps all information linearly available (explicitness stays)."""
    f, exact, rotated = codes["factors"], codes["exact"], codes["rotated"]
    assert mig(rotated, f) < mig(exact, f) - 0.3
    assert sap(rotated, f) < sap(exact, f) - 0.3
    assert explicitness(rotated, f) == pytest.approx(explicitness(exact, f), abs=0.005)


def test_bad_inputs_are_one_config_error(codes: dict[str, np.ndarray]) -> None:
    f = codes["factors"]
    with pytest.raises(ConfigError, match="batch_size must be at least 2"):
        beta_vae_score(codes["exact"], f, batch_size=1)
    with pytest.raises(ConfigError, match="n_eval must be a positive integer"):
        factor_vae_score(codes["exact"], f, n_eval=0)
    with pytest.raises(ConfigError, match="single value in the training split"):
        sap(codes["exact"], np.zeros_like(f))
    with pytest.raises(ConfigError, match="at least 2 factors"):
        modularity(codes["exact"], f[:, :1])


def test_batch_scores_are_seeded(codes: dict[str, np.ndarray]) -> None:
    f, z = codes["factors"], codes["noise"]
    assert beta_vae_score(z, f, seed=3, **BATCHES) == beta_vae_score(z, f, seed=3, **BATCHES)
    assert factor_vae_score(z, f, seed=3, **BATCHES) != factor_vae_score(z, f, seed=4, **BATCHES)


def test_evaluator_scores_an_untrained_shapes_model_with_declared_directions(tmp_path: Path) -> None:
    """The evaluator of conf/eval/disentanglement.yaml on a real (untrained) model of data=shapes: every metric is
    emitted, in [0, 1] and declared higher-is-better; ~5 s on 2 cores (asserted loosely: a shared machine)."""
    cfg = compose_cfg(["data=shapes", f"data.root={tmp_path}/shapes", "model=beta_vae", "model/arch=mlp",
                       "model.latent_dim=10", "eval=disentanglement"])
    data = build(cfg.data)
    data.setup()
    model = build(cfg.model).eval()
    evaluator = build(cfg.eval.disentanglement)
    start = time.perf_counter()
    got = evaluator(model, data, tmp_path).metrics
    seconds = time.perf_counter() - start
    names = ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "beta_vae_score",
             "factor_vae_score", "sap", "modularity", "explicitness")
    assert sorted(got) == sorted(f"test/{name}" for name in names)
    assert all(evaluator.direction(key) is True for key in got)
    assert all(0.0 <= value <= 1.0 for value in got.values()), got
    assert got["test/factor_vae_score"] == 0.0  # untrained codes have std ~0.015 < prune_threshold 0.05: all pruned
    assert seconds < 20, f"the evaluator took {seconds:.1f} s"
