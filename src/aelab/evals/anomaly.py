"""Anomaly detection: score every test example by each of the model's anomaly scores; AUROC and AUPRC per score.

The scores come from `model.anomaly_scores(x, target)` (higher = more anomalous), each its own column:
`recon` -log p(target|z) at the deterministic code, `elbo` -ELBO (Gaussian bottlenecks), `latent` -log density
of the code under the Gaussian mixture fitted on the training codes (`model.density`), and a baseline's own
(`ocsvm`). `combined` sums `recon` and `latent` after standardising each on the validation split, which holds
normal examples only, so no anomaly label is used. `test/auroc` is the model's first score (-ELBO when it has
one, else the reconstruction error). Anomalies are the test examples outside `data.normal_classes`; AUPRC is
the average precision with the anomalies as the positive class.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchmetrics.functional.classification import binary_auroc, binary_average_precision

from aelab.core.rng import seeded
from aelab.data.base import InMemoryDataModule
from aelab.evals.base import DENSITY_FIT_ON, Evaluation, Evaluator, fit_code_density
from aelab.models.api import Autoencoder

COMBINED = ("recon", "latent")  # standardised on validation data and summed
SCORE_SEED = 0  # the -ELBO score draws one posterior sample: seeded alike at calibration, test and apply


def detection_metrics(scores: torch.Tensor, is_anomaly: torch.Tensor) -> dict[str, float]:
    """AUROC and AUPRC of scores (N,) (higher = more anomalous) for boolean labels (N,)."""
    s = scores.double()
    # min-max into [0, 1] (order kept): torchmetrics would otherwise read the scores as logits and squash them
    s = (s - s.min()) / (s.max() - s.min()).clamp_min(torch.finfo(s.dtype).tiny)
    target = is_anomaly.long()
    return {"auroc": float(binary_auroc(s, target)), "auprc": float(binary_average_precision(s, target))}


@torch.no_grad()
def all_scores(model: Autoencoder, x: torch.Tensor, target: torch.Tensor, size: int = 1000,
               seed: int | None = None) -> dict[str, torch.Tensor]:
    """model.anomaly_scores over chunks of (x, target), each score (N,) on the CPU; with a `seed`, the draws inside
    the model come from the global RNG seeded with it, and the global RNG is restored after (None: drawn as it is)."""
    if seed is not None:
        with seeded(seed):
            return all_scores(model, x, target, size)
    chunks = [model.anomaly_scores(xs.to(model.device), ts.to(model.device)) for xs, ts in zip(x.split(size), target.split(size))]
    return {name: torch.cat([c[name].cpu() for c in chunks]) for name in chunks[0]}


def combined(test: dict[str, torch.Tensor], val: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """Sum of the COMBINED scores, each standardised with the mean and std of its validation scores."""
    if not all(name in test for name in COMBINED):
        return None
    return sum((test[n] - val[n].mean()) / val[n].std().clamp_min(1e-12) for n in COMBINED)


def calibrate_threshold(model: Autoencoder, data: InMemoryDataModule, fpr: float) -> dict:
    """The decision threshold of the model's first anomaly score (the one test/auroc uses) that flags a share
    `fpr` of the validation examples, which are all normal: their (1 - fpr) quantile; with how many it was
    calibrated on and flags, and the 95% interval of its false-positive rate (`fpr_interval`)."""
    if not 0.0 < fpr < 1.0:
        from aelab.core.errors import ConfigError

        raise ConfigError(f"threshold_fpr must be in (0, 1), got {fpr}")
    val = data.whole("val")
    scores = all_scores(model, val["x"], val["target"], seed=SCORE_SEED)
    name = next(iter(scores))
    threshold = float(torch.quantile(scores[name].double(), 1.0 - fpr))
    flagged = int((scores[name].double() > threshold).sum())
    return {"score": name, "threshold": threshold, "fpr": fpr, "calibrated_on": len(val["x"]), "flagged": flagged,
            "fpr_interval": fpr_interval(flagged, len(val["x"]))}


def fpr_interval(flagged: int, n: int, level: float = 0.95) -> list[float]:
    """Clopper-Pearson interval of a false-positive rate seen as `flagged` of `n` normal rows:
    [Beta_{a/2}(k, n - k + 1), Beta_{1 - a/2}(k + 1, n - k)], a = 1 - level, 0 / 1 at the ends."""
    from scipy.stats import beta

    alpha = 1.0 - level
    low = float(beta.ppf(alpha / 2, flagged, n - flagged + 1)) if flagged > 0 else 0.0
    high = float(beta.ppf(1 - alpha / 2, flagged + 1, n - flagged)) if flagged < n else 1.0
    return [low, high]


def threshold_warning(threshold: dict, half_width: float = 0.05) -> str | None:
    """A sentence when the threshold's false-positive rate is known only within more than +-`half_width`."""
    low, high = threshold["fpr_interval"]
    if (high - low) / 2 <= half_width:
        return None
    return (f"the decision threshold was calibrated on {threshold['calibrated_on']} normal validation rows "
            f"({threshold['flagged']} above it): its false-positive rate on new normal rows is somewhere in "
            f"{100 * low:.1f}-{100 * high:.1f}% (95% Clopper-Pearson; asked {100 * threshold['fpr']:g}%); "
            f"more validation rows (data.val_size) narrow it")


class AnomalyDetection(Evaluator):
    """`test/auroc`, `test/auprc` (first score), `test/auroc_<score>` for every score, `test/anomaly_rate`."""

    higher_is_better = {"auroc": True, "auprc": True, "anomaly_rate": None, "auroc_recon": True, "auroc_elbo": True,
                        "auroc_latent": True, "auroc_combined": True, "auroc_ocsvm": True}

    def __init__(self, density_fit_on: int = DENSITY_FIT_ON) -> None:
        self.density_fit_on = density_fit_on

    def skip_reason(self, model: Autoencoder, data: InMemoryDataModule) -> str | None:
        return None if data.normal_classes is not None else "no anomaly labels (set task=one_class or data.normal_classes)"

    def __call__(self, model: Autoencoder, data: InMemoryDataModule, out_dir: Path) -> Evaluation:
        if getattr(model, "density", None) is not None:  # the code density of these weights (the best checkpoint)
            fit_code_density(model, data, self.density_fit_on)
        test = data.whole("test")
        val = data.whole("val")
        with seeded(SCORE_SEED):  # the model draws -ELBO's posterior sample from the global RNG: restored after
            scores = all_scores(model, test["x"], test["target"])
            both = combined(scores, all_scores(model, val["x"], val["target"]))  # val continues test's draws
        if both is not None:
            scores["combined"] = both
        labels = data.is_anomaly(test["y"])
        first = next(iter(scores))
        metrics = {f"test/{k}": v for k, v in detection_metrics(scores[first], labels).items()}
        metrics |= {f"test/auroc_{name}": detection_metrics(s, labels)["auroc"] for name, s in scores.items()}
        metrics["test/anomaly_rate"] = float(labels.float().mean())
        return Evaluation(metrics=metrics, notes=[f"test/auroc and test/auprc use the {first} score"])
