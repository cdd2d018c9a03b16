"""Disentanglement of the test codes against the data's known generative factors (data=shapes): MIG (Chen et al.
2018), DCI disentanglement / completeness / informativeness (Eastwood & Williams 2018), the BetaVAE score (Higgins
et al. 2017), the FactorVAE score (Kim & Mnih 2018), SAP (Kumar et al. 2018), modularity and explicitness
(Ridgeway & Mozer 2018), as defined in disentanglement_lib (Locatello et al. 2019); the test split is the pool that
the BetaVAE and FactorVAE scores draw their fixed-factor batches from. `traversals.png`: one row per code
dimension, the first test image's code with that dimension swept over +-`span` (rows of a disentangled code
each move one factor)."""

from __future__ import annotations

from pathlib import Path

from torchvision.utils import save_image

from aelab.data.base import InMemoryDataModule
from aelab.evals.base import Evaluation, Evaluator, batched
from aelab.evals.generation import traversals
from aelab.metrics.disentanglement import beta_vae_score, dci, explicitness, factor_vae_score, mig, modularity, sap
from aelab.models.api import Autoencoder


class Disentanglement(Evaluator):
    """`test/mig`, `test/dci_{disentanglement,completeness,informativeness}`, `test/beta_vae_score`,
    `test/factor_vae_score`, `test/sap`, `test/modularity`, `test/explicitness`."""

    higher_is_better = {"mig": True, "dci_disentanglement": True, "dci_completeness": True, "dci_informativeness": True,
                        "beta_vae_score": True, "factor_vae_score": True, "sap": True, "modularity": True,
                        "explicitness": True}

    def __init__(self, bins: int = 20, max_examples: int = 10000, n_estimators: int = 30, batch_size: int = 64,
                 n_train: int = 10000, n_eval: int = 5000, prune_threshold: float = 0.05, seed: int = 0,
                 steps: int = 9, span: float = 2.5) -> None:
        self.bins, self.max_examples, self.n_estimators = bins, max_examples, n_estimators
        self.batch_size, self.n_train, self.n_eval, self.seed = batch_size, n_train, n_eval, seed
        self.prune_threshold, self.steps, self.span = prune_threshold, steps, span

    def skip_reason(self, model: Autoencoder, data: InMemoryDataModule) -> str | None:
        return None if data.split("test").factors is not None else f"{data.name} has no known factors (use data=shapes)"

    def __call__(self, model: Autoencoder, data: InMemoryDataModule, out_dir: Path) -> Evaluation:
        test = data.fixed_batch("test", self.max_examples)
        codes, factors = batched(model.encode, test["x"], device=model.device), test["factors"]
        batches = {"seed": self.seed, "batch_size": self.batch_size, "n_train": self.n_train, "n_eval": self.n_eval}
        scores = dci(codes, factors, seed=self.seed, n_estimators=self.n_estimators)
        metrics = {"test/mig": mig(codes, factors, bins=self.bins),
                   **{f"test/dci_{k}": v for k, v in scores.items()},
                   "test/beta_vae_score": beta_vae_score(codes, factors, **batches),
                   "test/factor_vae_score": factor_vae_score(codes, factors, prune_threshold=self.prune_threshold,
                                                             **batches),
                   "test/sap": sap(codes, factors, seed=self.seed),
                   "test/modularity": modularity(codes, factors, bins=self.bins),
                   "test/explicitness": explicitness(codes, factors, seed=self.seed)}
        grid = traversals(model, codes[0], codes.shape[1], self.steps, self.span)  # (d * steps, C, H, W)
        save_image(grid, out_dir / "traversals.png", nrow=self.steps, padding=1, pad_value=0.5)
        return Evaluation(metrics=metrics, images={"test/traversals": out_dir / "traversals.png"},
                          notes=[f"{len(codes)} test codes"])
