"""Tasks: what the model sees (`x`) for each clean `target`. The batch is `{"x", "target", "y"}` for every task.

reconstruct: x = target. denoise: x = corruption(target) (Vincent et al. 2008). colorize: x = the target's
luminance (ITU-R BT.601 weights) repeated over its channels, so the architecture is the same as for
reconstruction. one_class is `reconstruct` with `data.normal_classes` set (conf/task/one_class.yaml).
Val/test inputs of random tasks are drawn once with a fixed seed, so every evaluation sees the same inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from aelab.core.errors import ConfigError
from aelab.data.colorspace import check_space, to_space


class Task:
    """Reconstruct: the input is the target itself."""

    levels: tuple[float, ...] = ()  # extra corruption levels the restoration evaluator measures

    def __init__(self, name: str = "reconstruct") -> None:
        self.name = name

    def inputs(self, target: torch.Tensor) -> torch.Tensor:
        """Model inputs for a batch of clean targets (B, *shape)."""
        return target

    @property
    def identity(self) -> bool:
        """True when the input is the target (nothing to restore)."""
        return type(self).inputs is Task.inputs

    def fixed_inputs(self, target: torch.Tensor, seed: int) -> torch.Tensor | None:
        """Inputs drawn once under `seed` (for val/test); None when the input is the target."""
        if self.identity:
            return None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return torch.cat([self.inputs(chunk) for chunk in target.split(4096)])

    def at_level(self, level: float) -> "Task":
        raise ConfigError(f"task {self.name} has no corruption level")


class Denoise(Task):
    """Corrupted input, clean target; `levels` are the extra noise levels evaluated at test time."""

    def __init__(self, corruption: nn.Module, levels: list[float] | None = None, name: str = "denoise") -> None:
        super().__init__(name)
        self.corruption, self.levels = corruption, tuple(levels or ())

    def inputs(self, target: torch.Tensor) -> torch.Tensor:
        return self.corruption(target)

    def at_level(self, level: float) -> "Denoise":
        return Denoise(self.corruption.at_level(level))


class Colorize(Task):
    """Grayscale input (luminance repeated over the C=3 channels), colour target; `space` is the colour space the
    model predicts in (aelab.data.colorspace; the module reads it as `model.color_space`)."""

    def __init__(self, name: str = "colorize", space: str = "rgb") -> None:
        super().__init__(name)
        self.space = check_space(space)

    def inputs(self, target: torch.Tensor) -> torch.Tensor:
        if target.ndim != 4 or target.shape[1] != 3:
            raise ConfigError(f"task=colorize needs colour images (B, 3, H, W), got {tuple(target.shape)}: "
                              "use data=photo_patches, shapes_color or cifar10")
        gray = to_space(target, "ycbcr")[:, :1]  # (B, 3, H, W) -> (B, 1, H, W): BT.601 luma
        return gray.expand_as(target).contiguous()
