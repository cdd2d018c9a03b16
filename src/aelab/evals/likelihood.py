"""Importance-weighted estimate of the test negative log-likelihood (Burda et al. 2016, section 5):

-log p(x) ~= -log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x); k = 1 is the single-sample -ELBO and the
estimate tightens (decreases in expectation) as k grows. In nats per example, under the model's likelihood.

`test/active_units` is Burda et al.'s measure of how many latent dimensions the model uses (section 5.2): unit u is
active when A_u = Cov_x(E_q(z|x)[u]) > 0.01, the variance over test inputs of its posterior mean.
"""

from __future__ import annotations

from pathlib import Path

import torch

from aelab.core.errors import positive_int
from aelab.core.rng import seeded
from aelab.data.base import InMemoryDataModule
from aelab.evals.base import Evaluation, Evaluator, batched
from aelab.models.api import GenerativeAutoencoder


def active_units(posterior_means: torch.Tensor, threshold: float = 0.01) -> int:
    """Number of code dimensions whose posterior mean (N, d) varies across inputs by more than `threshold`."""
    return int((posterior_means.double().var(dim=0) > threshold).sum())


class ImportanceWeightedNLL(Evaluator):
    """`test/iw_nll` with k samples per example and `test/active_units`, over the first `max_examples` test
    examples (all when null)."""

    higher_is_better = {"iw_nll": False, "active_units": None}  # more active units is a description, not a score

    def __init__(self, k: int = 100, max_examples: int | None = None, codes_per_batch: int = 20000, seed: int = 0,
                 active_threshold: float = 0.01) -> None:
        self.k = positive_int("eval.likelihood.k", k)
        self.max_examples, self.codes_per_batch, self.seed = max_examples, codes_per_batch, seed
        self.active_threshold = active_threshold

    def skip_reason(self, model: GenerativeAutoencoder, data: InMemoryDataModule) -> str | None:
        if not model.bottleneck.elbo_terms:
            return "needs a stochastic bottleneck with an ELBO (vae, beta_vae, iwae ...)"
        if not model.likelihood.normalised:
            return f"needs a normalised likelihood; {type(model.likelihood).__name__} is a loss, not a density"
        return None

    def __call__(self, model: GenerativeAutoencoder, data: InMemoryDataModule, out_dir: Path) -> Evaluation:
        test = data.whole("test") if self.max_examples is None else data.fixed_batch("test", self.max_examples)
        n = len(test["x"])
        size = max(1, self.codes_per_batch // self.k)  # examples per batch so that k * size codes fit at once
        with seeded(self.seed):  # the model draws z_i ~ q(z|x) from the global RNG: seeded here, restored after
            log_px = batched(lambda x, t: model.iw_log_likelihood(x, t, self.k), test["x"], test["target"],
                             device=model.device, size=size)
        means = batched(model.encode, test["x"], device=model.device)  # posterior means (n, d)
        notes = [f"k={self.k} importance samples on {n} test examples; active units: Cov_x(E_q[u]) > {self.active_threshold}"]
        return Evaluation(metrics={"test/iw_nll": float(-log_px.mean()),
                                   "test/active_units": active_units(means, self.active_threshold)}, notes=notes)
