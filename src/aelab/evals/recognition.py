"""Recognition from frozen codes: linear-probe, k-NN and (optionally) MLP accuracy, trained on train codes, scored on
test codes. The MLP probe is scikit-learn's MLPClassifier, as in the Fashion-MNIST benchmark (Xiao et al. 2017)."""

from __future__ import annotations

from pathlib import Path

from aelab.data.base import InMemoryDataModule
from aelab.evals.base import Evaluation, Evaluator, split_codes
from aelab.metrics.probe import knn_accuracy, mlp_accuracy, probe_accuracy
from aelab.models.api import Autoencoder


class Recognition(Evaluator):
    """`test/probe_acc` (standardised logistic regression), `test/knn_acc` (k nearest neighbours) and, when
    `mlp_hidden` is set, `test/mlp_acc` (a standardised MLP with those hidden layers, early stopping on a
    tenth of the train codes)."""

    higher_is_better = {"probe_acc": True, "knn_acc": True, "mlp_acc": True}

    def __init__(self, k: int = 5, max_train: int | None = 20000, max_iter: int = 1000,
                 mlp_hidden: list[int] | None = None, seed: int = 0) -> None:
        self.k, self.max_train, self.max_iter = k, max_train, max_iter
        self.mlp_hidden, self.seed = mlp_hidden, seed

    def skip_reason(self, model: Autoencoder, data: InMemoryDataModule) -> str | None:
        if data.normal_classes is not None and len(data.normal_classes) < 2:
            return "the training split holds a single class (one-class task)"
        return None

    def __call__(self, model: Autoencoder, data: InMemoryDataModule, out_dir: Path) -> Evaluation:
        z_train, y_train = split_codes(model, data, "train", self.max_train)
        z_test, y_test = split_codes(model, data, "test")
        metrics = {"test/probe_acc": probe_accuracy(z_train, y_train, z_test, y_test, max_iter=self.max_iter),
                   "test/knn_acc": knn_accuracy(z_train, y_train, z_test, y_test, k=self.k)}
        if self.mlp_hidden:
            metrics["test/mlp_acc"] = mlp_accuracy(z_train, y_train, z_test, y_test, self.mlp_hidden, seed=self.seed)
        notes = [f"probe and {self.k}-NN fit on {len(z_train)} train codes"] if len(z_train) < len(data.split("train")) else []
        return Evaluation(metrics=metrics, notes=notes)
