"""Loss-weight schedules as callbacks, driven by the global step (so a resumed run continues the schedule).

- WeightWarmup: KL warm-up / annealing (Bowman et al. 2016, "Generating Sentences from a Continuous Space").
- CapacityIncrease: beta-VAE capacity annealing, loss term gamma * |KL - C| with C growing linearly
  (Burgess et al. 2018, "Understanding disentangling in beta-VAE").
- TemperatureDecay: the Gumbel-softmax temperature, tau = max(end, start exp(-r t)) (Jang et al. 2017,
  "Categorical Reparameterization with Gumbel-Softmax"), r set so that tau reaches `end` after `steps` steps.
"""

from __future__ import annotations

import math

import pytorch_lightning as pl


def linear(step: int, start: float, end: float, steps: int, delay: int = 0) -> float:
    """start until `delay`, then linearly to `end` over `steps` steps, then `end`."""
    t = min(max(step - delay, 0) / max(steps, 1), 1.0)
    return start + t * (end - start)


class WeightWarmup(pl.Callback):
    """Sets `module.loss_weights[term]` from `start` to `end` over `steps` optimizer steps."""

    def __init__(self, term: str, start: float = 0.0, end: float = 1.0, steps: int = 1000, delay: int = 0) -> None:
        self.term, self.start, self.end, self.steps, self.delay = term, start, end, steps, delay

    def apply(self, module: pl.LightningModule, step: int) -> float:
        """Set the weight for optimizer step `step` (the module calls it between the steps of one call too)."""
        module.loss_weights[self.term] = linear(step, self.start, self.end, self.steps, self.delay)
        return module.loss_weights[self.term]

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch, batch_idx: int) -> None:
        module.log(f"schedule/{self.term}", self.apply(module, trainer.global_step), on_step=True, on_epoch=False)


class CapacityIncrease(pl.Callback):
    """Sets the Gaussian bottleneck's target KL capacity C (nats) from 0 to `max_capacity` over `steps` steps."""

    def __init__(self, max_capacity: float = 25.0, steps: int = 10000) -> None:
        self.max_capacity, self.steps = max_capacity, steps

    def apply(self, module: pl.LightningModule, step: int) -> float:
        """Set the capacity for optimizer step `step` (the module calls it between the steps of one call too)."""
        capacity = linear(step, 0.0, self.max_capacity, self.steps)
        module.bottleneck.capacity.fill_(capacity)
        return capacity

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch, batch_idx: int) -> None:
        module.log("schedule/capacity", self.apply(module, trainer.global_step), on_step=True, on_epoch=False)


class TemperatureDecay(pl.Callback):
    """Sets the bottleneck's temperature `tau` from `start` down to `end` over `steps` steps, exponentially."""

    def __init__(self, start: float = 1.0, end: float = 0.5, steps: int = 10000) -> None:
        self.start, self.end, self.steps = start, end, steps

    def apply(self, module: pl.LightningModule, step: int) -> float:
        """Set tau for optimizer step `step`: start (end / start)^(t / steps), then end."""
        tau = math.exp(linear(step, math.log(self.start), math.log(self.end), self.steps))
        module.bottleneck.tau.fill_(tau)
        return tau

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch, batch_idx: int) -> None:
        module.log("schedule/tau", self.apply(module, trainer.global_step), on_step=True, on_epoch=False)
