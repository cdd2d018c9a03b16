"""Shared pieces of scripts/bench.py: settings, records, timers, constants, helpers and the report writers."""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from statistics import median
from typing import Any

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from aelab import CONF_DIR
from aelab.tracking.console import make_console

log = logging.getLogger("bench")
ROOT = Path(CONF_DIR).parent
OUT = ROOT / "outputs" / "bench"
BIN = Path(sys.executable).parent
FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
COMMAND = "make bench"
ENV = {**os.environ, "WANDB_MODE": "offline"}
# The throughput runs: aelab's defaults minus the experiment logger and the image callbacks, validation off.
FIT = ["logger=none", "callbacks.reconstructions=null", "callbacks.embeddings=null", "callbacks.samples=null",
       "+trainer.limit_val_batches=0"]
SWEEP_JOBS = ["data=digits", "logger=none", "eval=none", "model=ae,vae", "seed=0,1"]  # 4 jobs, otherwise default


@dataclass
class Settings:
    """How much work each part does; `QUICK` only checks that the script runs end to end."""

    batches: int = 120  # train batches of 128 per epoch in part 1 (Lightning's limit_train_batches)
    epochs: int = 2  # measured epochs per fit in part 1, after one warm-up epoch
    rounds: int = 3  # part 1 alternates aelab and plain fits this many times, so that drift hits both alike
    loader_epochs: int = 3  # epochs of aelab's loader in part 2 (the median is reported)
    torchvision_batches: int | None = None  # None: one whole epoch of torchvision's loader
    startup_reps: int = 3
    sweep_epochs: int = 30  # ~10 s of training per job, so that the jobs, not the start-up, dominate
    fractions: tuple[float, ...] = (0.1, 0.5, 1.0)  # of the 55k train split, part 5
    scale_epochs: int = 2  # measured epochs per data fraction in part 5
    latents: tuple[int, ...] = (8, 32, 128)
    latent_fraction: float = 0.25  # of the train split, for the latent-size runs
    user_rounds: int = 10  # part 6: rounds of (before, after, plain) processes per arch
    user_epochs: int = 3  # part 6: epochs per run (the first is not measured)
    user_threads: int = 1  # part 6 and 7: torch threads of every process (the machine is shared: see docs/performance.md)
    user_fraction: float = 0.4  # part 6: of the train and of the val batches per epoch (val: 2 of 5 batches)
    overhead_processes: int = 3  # part 7: worker processes per side, in rotated order
    overhead_rounds: int = 3  # part 7: (aelab fit, plain fit) pairs per worker
    overhead_epochs: int = 3  # part 7: measured epochs per fit, after one warm-up


QUICK = Settings(batches=10, epochs=1, rounds=1, loader_epochs=1, torchvision_batches=20, startup_reps=1,
                 sweep_epochs=1, fractions=(0.02, 0.05, 0.1), scale_epochs=1, latents=(8, 128), latent_fraction=0.02,
                 user_rounds=1, user_fraction=0.2, overhead_processes=1, overhead_rounds=1, overhead_epochs=1)


@dataclass
class Part:
    """One section of the report: a table of measurements and whether they meet the target."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    target: str
    met: bool | None  # None: no target, reported only
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # raw measurements, for bench.json only


@dataclass
class Epoch:
    """Wall time of one train epoch and the samples it trained on."""

    seconds: float
    samples: int
    start: float = 0.0  # perf_counter at the epoch's start (epoch-to-epoch intervals include checkpointing)


class EpochTimer(pl.Callback):
    """Times each train epoch from `on_train_epoch_start` to `on_train_epoch_end` (before ModelCheckpoint's save)."""

    def __init__(self) -> None:
        self.epochs: list[Epoch] = []
        self._start, self._samples = 0.0, 0

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._start, self._samples = time.perf_counter(), 0

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._samples += len(batch["x"])

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.epochs.append(Epoch(time.perf_counter() - self._start, self._samples, self._start))


# ---- helpers --------------------------------------------------------------------------------------------------
def plain_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, xb: torch.Tensor, bf16: bool = False
               ) -> torch.Tensor:
    """One hand-written training step of an AutoencoderModule on a batch (B, ...): the plain loops' step; `bf16`:
    the forward pass under bf16 autocast, as Lightning's bf16-mixed precision (trainer=gpu) runs it."""
    with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=bf16):
        out, _ = model(xb)
        loss = model.likelihood.nll(out, xb).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def compose_cfg(overrides: list[str]) -> DictConfig:
    """conf/train.yaml composed with overrides, exactly as `aelab-train` would see them."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def rate(epochs: list[Epoch]) -> tuple[float, float]:
    """(median seconds per epoch, samples per second at that median) of the measured (post warm-up) epochs."""
    seconds = median(e.seconds for e in epochs)
    return seconds, median(e.samples for e in epochs) / seconds


def epoch_to_epoch(epochs: list[Epoch]) -> float | None:
    """Median interval between epoch starts: the train epoch plus whatever runs between epochs (checkpoints)."""
    gaps = [b.start - a.start for a, b in zip(epochs, epochs[1:])]
    return median(gaps) if gaps else None


def fmt(value: Any) -> str:
    """Numbers rounded for a table; everything else as text."""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"nproc": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "pytorch_lightning": metadata.version("pytorch-lightning"), "python": platform.python_version(),
            "cpu": cpu, "platform": platform.platform()}


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds used by every process on the machine since boot, CPU seconds of this process and its children)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    own = os.times()
    return ((user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK"),
            own.user + own.system + own.children_user + own.children_system)


def other_cores(before: tuple[float, float], wall: float) -> float:
    """Average number of cores that processes other than this benchmark kept busy since `before`."""
    now = cpu_seconds()
    return max(0.0, (now[0] - before[0]) - (now[1] - before[1])) / wall


# ---- report ---------------------------------------------------------------------------------------------------
def verdict(part: Part) -> str:
    """The target's verdict in words."""
    return "reported only" if part.met is None else ("met" if part.met else "NOT met")


def markdown(report: dict[str, Any], parts: list[Part]) -> str:
    """bench.md: the machine and command, then a table per part with its target and verdict."""
    m = report["machine"]
    lines = ["# aelab benchmark", "", f"Command: `{report['command']}` (scripts/bench.py), {report['date']}, "
             f"total {report['total_s']:.0f} s" + (" (--quick: not for quoting)" if report["quick"] else ""), "",
             f"Machine: nproc {m['nproc']}, torch threads {m['torch_threads']}, torch {m['torch']}, "
             f"pytorch-lightning {m['pytorch_lightning']}, Python {m['python']}, {m['cpu']}, {m['platform']}", "",
             f"Other processes kept {m['other_cores_busy']:.2f} of the {m['nproc']} cores busy on average during the "
             "run (anything above ~0.1 skews the numbers).", ""]
    for part in parts:
        lines += [f"## {part.title}", "", "| " + " | ".join(part.columns) + " |",
                  "|" + "---|" * len(part.columns)]
        lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in part.rows]
        lines += ["", f"Target: {part.target}: **{verdict(part)}**", ""] + [f"- {n}" for n in part.notes] + [""]
    return "\n".join(lines)


def show(parts: list[Part]) -> None:
    """The tables on the console."""
    from rich.table import Table

    console = make_console()
    for part in parts:
        table = Table(title=part.title, caption=f"{part.target}: {verdict(part)}")
        for column in part.columns:
            table.add_column(column, overflow="fold")
        for row in part.rows:
            table.add_row(*(fmt(v) for v in row))
        console.print(table)
