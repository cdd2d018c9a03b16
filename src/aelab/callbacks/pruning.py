"""Optuna pruning from the per-epoch validation metric (cf. optuna-integration's PyTorchLightningPruningCallback).

The Optuna sweeper (`hydra/sweeper=optuna`) names the running trial in the environment (`AELAB_OPTUNA_TRIAL`: its
storage, study, trial id and pruner); at every validation end this callback reports the monitored metric at step
= epoch and asks the pruner whether the trial should stop. If so, training ends with `TrialPruned`, the run is
recorded `pruned` (not failed: it was stopped, not broken) and the sweeper tells the study PRUNED. Outside an
Optuna sweep it does nothing. Single-process trials only: under DDP it reports from rank 0 alone, and a pruned
rank 0 would leave the other ranks waiting (not tested; prune DDP trials by their time budget instead).
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl

from aelab.core.errors import AelabError
from aelab.tracking.study import TrialRef, open_storage


class TrialPruned(AelabError):
    """The trial's pruner stopped it; `record_state` is what the run record says."""

    record_state = "pruned"


class OptunaPruning(pl.Callback):
    """Report `monitor` each epoch to the sweep's running trial; stop when its pruner says so."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.ref = TrialRef.from_env()
        self.trial: Any = None

    def setup(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        if self.ref is None or not trainer.is_global_zero or self.trial is not None:
            return
        import optuna

        from aelab.core.build import build

        pruner = build(self.ref.pruner) if self.ref.pruner else optuna.pruners.NopPruner()
        study = optuna.load_study(study_name=self.ref.study_name, storage=open_storage(self.ref.storage), pruner=pruner)
        self.trial = optuna.trial.Trial(study, self.ref.trial_id)

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.trial is None or trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if not math.isfinite(value):
            return  # the divergence guard's case: a failed run, not a pruned one
        epoch = trainer.current_epoch
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            raise TrialPruned(f"pruned by Optuna at epoch {epoch}: {self.monitor} = {value:.4g}")
