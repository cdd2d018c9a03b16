"""Disentanglement of the test codes against the data's known generative factors (data=shapes):
MIG (Chen et al. 2018) and DCI disentanglement / completeness / informativeness (Eastwood & Williams 2018)."""

from __future__ import annotations

from pathlib import Path

from aelab.data.base import InMemoryDataModule
from aelab.evals.base import Evaluation, Evaluator, batched
from aelab.metrics.disentanglement import dci, mig
from aelab.models.api import Autoencoder


class Disentanglement(Evaluator):
    """`test/mig`, `test/dci_disentanglement`, `test/dci_completeness`, `test/dci_informativeness`."""

    higher_is_better = {"mig": True, "dci_disentanglement": True, "dci_completeness": True, "dci_informativeness": True}

    def __init__(self, bins: int = 20, max_examples: int = 10000, n_estimators: int = 30) -> None:
        self.bins, self.max_examples, self.n_estimators = bins, max_examples, n_estimators

    def skip_reason(self, model: Autoencoder, data: InMemoryDataModule) -> str | None:
        return None if data.split("test").factors is not None else f"{data.name} has no known factors (use data=shapes)"

    def __call__(self, model: Autoencoder, data: InMemoryDataModule, out_dir: Path) -> Evaluation:
        test = data.fixed_batch("test", self.max_examples)
        codes = batched(model.encode, test["x"], device=model.device)
        scores = dci(codes, test["factors"], n_estimators=self.n_estimators)
        metrics = {"test/mig": mig(codes, test["factors"], bins=self.bins),
                   **{f"test/dci_{k}": v for k, v in scores.items()}}
        return Evaluation(metrics=metrics, notes=[f"{len(codes)} test codes"])
