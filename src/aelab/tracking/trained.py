"""A trained run opened from disk, the one way: its checkpoint, stored config, model with weights, apply state, record.

`open_run(path)` takes a run folder (its checkpoints/best.ckpt, else last.ckpt) or a checkpoint file. The model is
built from the config stored in the checkpoint (`_target_`, by aelab.core.build: tracking never imports a model
class), loaded with weights_only, put in eval mode and given the code density stored in its apply state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aelab.core.errors import CheckpointError
from aelab.tracking.run import read_record

if TYPE_CHECKING:
    from omegaconf import DictConfig

BEST = Path("checkpoints") / "best.ckpt"  # written after testing, with the apply state
LAST = Path("checkpoints") / "last.ckpt"  # for resuming; no apply state


@dataclass
class TrainedRun:
    """What a trained run holds: the checkpoint read, its run config, the model (eval mode), the apply state
    (None: last.ckpt or a run with test=false) and the run's result.json (None when the folder has none)."""

    checkpoint: Path
    config: DictConfig
    model: Any  # aelab.models.AutoencoderModule (or a baseline), built by _target_
    apply_state: dict[str, Any] | None
    record: dict[str, Any] | None

    @property
    def task(self) -> str:
        """The task's name; checkpoints from before tasks reconstruct."""
        return self.config.task.name if self.config.get("task") else "reconstruct"

    def datamodule(self, data: DictConfig | None = None) -> Any:
        """The run's DataModule (or `data` in its place) with the run's task, built but not set up."""
        from aelab.core.build import build

        task = build(self.config.task) if self.config.get("task") else None
        return build(data if data is not None else self.config.data, task=task)


def run_folder(checkpoint: Path) -> Path:
    """The run folder of a checkpoint: <run>/checkpoints/<name>.ckpt -> <run>; a loose file: its own folder."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def checkpoint_of(path: str | Path) -> Path:
    """The checkpoint that `path` names: the file itself, or a run folder's best.ckpt, else its last.ckpt."""
    path = Path(path).expanduser()
    if not path.is_dir():
        return path
    for name in (BEST, LAST):
        if (path / name).is_file():
            return path / name
    raise CheckpointError(f"run {path} has no {BEST} or {LAST} (it failed or was stopped before its first validation)")


def open_run(path: str | Path) -> TrainedRun:
    """Open a run folder or a checkpoint: its config, its model with weights loaded, its apply state and record."""
    from aelab.tracking.checkpoint import APPLY_KEY, load_checkpoint, rebuild_model

    checkpoint = checkpoint_of(path)
    ckpt = load_checkpoint(checkpoint)
    model, config = rebuild_model(ckpt)
    model.eval()
    state = ckpt.get(APPLY_KEY)
    model.load_density((state or {}).get("density"))
    record_path = run_folder(checkpoint) / "result.json"
    record = read_record(record_path) if record_path.is_file() else None
    return TrainedRun(checkpoint, config, model, state, record)
