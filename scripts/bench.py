"""`make bench`: aelab's speed side by side with plain PyTorch / torchvision / a bare import, on this machine.

Five parts, each checked against its target (issue 6): (1) training throughput of the default trainer against a
hand-written loop, (2) the in-memory train loader against torchvision's FashionMNIST + ToTensor + DataLoader,
(3) CLI start-up against `import torch`, (4) a 4-job digits sweep serially and through joblib with 2 workers,
(5) time per train epoch as the data and the latent size grow. Writes outputs/bench/bench.json and bench.md.
`--quick` runs every part on a small fraction of the work (to check the script, not to quote its numbers).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from statistics import median
from typing import Any

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from aelab.build import build
from aelab.callbacks.config import StoreConfig
from aelab.console import make_console
from aelab.data.base import InMemoryDataModule
from aelab.runtime import torch_threads
from aelab.train import CONF_DIR, quiet_libraries

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


QUICK = Settings(batches=10, epochs=1, rounds=1, loader_epochs=1, torchvision_batches=20, startup_reps=1,
                 sweep_epochs=1, fractions=(0.02, 0.05, 0.1), scale_epochs=1, latents=(8, 128), latent_fraction=0.02)


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


# ---- part 1: training throughput ------------------------------------------------------------------------------
def fit_aelab(overrides: list[str], datamodule: InMemoryDataModule, name: str) -> list[Epoch]:
    """Build callbacks and trainer from the composed config as `aelab.train.fit_and_test` does; fit; time epochs."""
    run_dir = OUT / "runs" / name.replace(" ", "_").replace("%", "pct")
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run folder each fit, as a new run would have
    cfg = compose_cfg([*FIT, *overrides, f"paths.output_dir={run_dir}"])
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model, timer = build(cfg.model), EpochTimer()
    callbacks = [build(c) for c in cfg.callbacks.values() if c is not None]
    callbacks += [StoreConfig(OmegaConf.to_container(cfg, resolve=True)), timer]
    trainer = build(cfg.trainer, logger=False, callbacks=callbacks)
    trainer.fit(model, datamodule=datamodule)
    torch.use_deterministic_algorithms(False)  # trainer.deterministic=true sets it process-wide
    return timer.epochs


def fit_plain(overrides: list[str], x: torch.Tensor, steps: int, epochs: int) -> list[Epoch]:
    """The same model class, init, data tensor, batch size, Adam(lr=1e-3) and loss in a hand-written loop."""
    cfg = compose_cfg([*FIT, *overrides])
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model, bs = build(cfg.model).train(), cfg.data.batch_size
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator, done = torch.Generator().manual_seed(cfg.seed), []
    for _ in range(epochs):
        start, samples = time.perf_counter(), 0
        perm = torch.randperm(len(x), generator=generator)
        for i in range(steps):
            xb = x[perm[i * bs:(i + 1) * bs]]
            out, _ = model(xb)
            loss = model.likelihood.nll(out, xb).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            samples += len(xb)
        done.append(Epoch(time.perf_counter() - start, samples, start))
    return done


def same_init(overrides: list[str]) -> bool:
    """Both sides build the model from the same config and seed: check that the initial weights are equal."""
    cfg = compose_cfg([*FIT, *overrides])
    models = []
    for _ in range(2):
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        models.append(build(cfg.model).state_dict())
    return all(torch.equal(v, models[1][k]) for k, v in models[0].items())


def n_steps(limit: int | float, n_batches: int) -> int:
    """Batches per epoch under Lightning's limit_train_batches (an int caps, a float is a fraction)."""
    return int(n_batches * limit) if isinstance(limit, float) else min(limit, n_batches)


def paired(overrides: list[str], datamodule: InMemoryDataModule, limit: int | float, epochs: int, rounds: int,
           name: str) -> dict[str, list[float]]:
    """aelab's trainer and the plain loop alternately, `rounds` times, on the same batches; measured epochs."""
    runs = [f"trainer.max_epochs={epochs + 1}", f"+trainer.limit_train_batches={limit}", *overrides]
    steps = n_steps(limit, len(datamodule.train_dataloader()))
    out: dict[str, list] = {"aelab": [], "plain": [], "aelab_gaps": []}
    for _ in range(rounds):
        log.info("%s: aelab trainer, %d epochs of %d batches", name, epochs + 1, steps)
        ae = fit_aelab(runs, datamodule, name)[1:]
        log.info("%s: plain loop", name)
        out["plain"] += fit_plain(runs, datamodule.train_set.x, steps, epochs + 1)[1:]
        out["aelab"] += ae
        gap = epoch_to_epoch(ae)
        out["aelab_gaps"] += [] if gap is None else [gap]
    return out


def throughput_row(arch: str, datamodule: InMemoryDataModule, s: Settings) -> tuple[list[Any], dict[str, Any]]:
    """One architecture: aelab's trainer against the plain loop; the table row and the raw epochs."""
    overrides = [f"model/arch={arch}"]
    runs = paired(overrides, datamodule, s.batches, s.epochs, s.rounds, f"part 1 {arch}")
    (ae_s, ae_rate), (plain_s, plain_rate) = rate(runs["aelab"]), rate(runs["plain"])
    gap = median(runs["aelab_gaps"]) if runs["aelab_gaps"] else None
    row = [arch, same_init(overrides), ae_s, ae_rate, gap, plain_s, plain_rate, ae_rate / plain_rate]
    return row, {k: [asdict(e) if isinstance(e, Epoch) else e for e in v] for k, v in runs.items()}


def part_throughput(s: Settings, datamodule: InMemoryDataModule) -> Part:
    """Part 1 for model/arch=mlp and conv."""
    results = {arch: throughput_row(arch, datamodule, s) for arch in ("mlp", "conv")}
    rows = [row for row, _ in results.values()]
    return Part(
        title="1. Training throughput: aelab's default trainer vs a plain PyTorch loop (Fashion-MNIST, model=ae)",
        columns=["arch", "same init", "aelab s/epoch", "aelab samples/s", "aelab epoch-to-epoch s",
                 "plain s/epoch", "plain samples/s", "ratio aelab/plain"],
        rows=rows, target="ratio >= 0.95 for every arch", met=all(r[-1] >= 0.95 for r in rows),
        data={arch: raw for arch, (_, raw) in results.items()},
        notes=[f"Each epoch: the first {s.batches} batches of 128 of a fresh shuffle of the 55,000-image train split "
               f"({s.batches * 128:,} samples), the same for both sides. {s.rounds} rounds of (aelab fit, plain fit), "
               f"each fit 1 warm-up + {s.epochs} measured epochs; the median of the {s.rounds * s.epochs} measured "
               "epochs of each side is reported.",
               "aelab: conf/train.yaml composed with `" + " ".join(FIT) + "` (model checkpointing, the rich progress "
               "bar and trainer/default.yaml otherwise as shipped); timed from on_train_epoch_start to "
               "on_train_epoch_end, validation disabled. 'epoch-to-epoch' adds what runs between epochs "
               "(ModelCheckpoint writing last.ckpt).",
               "plain: the same AutoencoderModule class and seed (initial weights checked equal), the same train "
               "tensor indexed by a randperm, Adam(lr=1e-3), loss = model.likelihood.nll(out, x).mean()."])


# ---- part 2: data pipeline ------------------------------------------------------------------------------------
def aelab_loader(datamodule: InMemoryDataModule, epochs: int) -> tuple[float, int]:
    """Samples/s of aelab's train loader over whole epochs (median) and the samples per epoch."""
    loader, times, samples = datamodule.train_dataloader(), [], 0
    for _ in range(epochs):
        start = time.perf_counter()
        samples = sum(len(batch["x"]) for batch in loader)
        times.append(time.perf_counter() - start)
    return samples / median(times), samples


def raw_copy(folder: Path) -> Path:
    """torchvision's layout, <root>/FashionMNIST/raw/<name without .gz>, gunzipped from the Debian files."""
    raw = folder / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for archive in sorted(FMNIST_DIR.glob("*-ubyte.gz")):
        (raw / archive.stem).write_bytes(gzip.decompress(archive.read_bytes()))
    return folder


def torchvision_loader(root: Path, max_batches: int | None) -> tuple[float, int, float]:
    """torchvision's default FashionMNIST + ToTensor + DataLoader(128, shuffle): samples/s, samples, init seconds."""
    from torchvision.datasets import FashionMNIST
    from torchvision.transforms import ToTensor

    start = time.perf_counter()
    loader = DataLoader(FashionMNIST(str(root), train=True, transform=ToTensor()), batch_size=128, shuffle=True)
    init_s, samples, start = time.perf_counter() - start, 0, time.perf_counter()
    for i, (x, _) in enumerate(loader):
        samples += len(x)
        if max_batches is not None and i + 1 >= max_batches:
            break
    return samples / (time.perf_counter() - start), samples, init_s


def part_data(s: Settings, datamodule: InMemoryDataModule, load_s: float) -> Part:
    """Part 2: aelab's in-memory loader against torchvision's default one."""
    log.info("part 2: aelab loader (%d epochs), torchvision loader", s.loader_epochs)
    ae_rate, ae_samples = aelab_loader(datamodule, s.loader_epochs)
    with tempfile.TemporaryDirectory(prefix="bench_fmnist_") as tmp:
        tv_rate, tv_samples, tv_init = torchvision_loader(raw_copy(Path(tmp)), s.torchvision_batches)
    rows = [["aelab train_dataloader()", ae_samples, ae_rate, load_s],
            ["torchvision FashionMNIST + ToTensor + DataLoader", tv_samples, tv_rate, tv_init],
            ["speed-up aelab/torchvision", "", ae_rate / tv_rate, ""]]
    return Part(
        title="2. Data pipeline: one epoch of batches of 128, num_workers=0",
        columns=["loader", "samples timed", "samples/s", "set-up s"], rows=rows,
        target="aelab >= 10x torchvision", met=ae_rate / tv_rate >= 10,
        notes=[f"aelab: the 55,000-image train split, median of {s.loader_epochs} shuffled epochs; set-up = "
               "FashionMNISTDataModule.setup() (gunzip, MD5 check, float conversion, split).",
               "torchvision: train=True (60,000 images), shuffle=True, "
               + ("one whole epoch" if s.torchvision_batches is None else f"the first {s.torchvision_batches} batches")
               + "; set-up = the dataset's constructor on the gunzipped raw files."])


# ---- part 3: start-up -----------------------------------------------------------------------------------------
def median_wall(command: list[str], reps: int) -> float:
    """Median wall time of a subprocess (it must succeed)."""
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, env=ENV, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return median(times)


def part_startup(s: Settings) -> Part:
    """Part 3: `aelab-train --help` and `--cfg job` against a bare `import torch`."""
    log.info("part 3: start-up (%d runs each)", s.startup_reps)
    commands = {"aelab-train --help": [str(BIN / "aelab-train"), "--help"],
                "aelab-train --cfg job": [str(BIN / "aelab-train"), "--cfg", "job"],
                'python -c "import torch"': [str(BIN / "python"), "-c", "import torch"]}
    times = {name: median_wall(cmd, s.startup_reps) for name, cmd in commands.items()}
    torch_s = times['python -c "import torch"']
    rows = [[name, t, t / torch_s, (t < 1.0) if name.startswith("aelab") else ""] for name, t in times.items()]
    return Part(title="3. Start-up: wall time of a fresh process", columns=["command", "s", "x import torch", "< 1 s"],
                rows=rows, target="aelab-train --help and --cfg job under 1 s",
                met=all(r[-1] for r in rows[:2]), notes=[f"median of {s.startup_reps} runs, from the repo root."])


# ---- part 4: sweeps -------------------------------------------------------------------------------------------
def first_log_s(sweep_dir: Path, launched: float) -> float | None:
    """Seconds from launching a sweep to the earliest first line of its jobs' train.log (a job loading its data)."""
    stamps = []
    for path in sweep_dir.glob("*/train.log"):
        line = path.read_text().split("\n", 1)[0]
        if line.startswith("["):
            stamps.append(datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return min(stamps) - launched if stamps else None


def run_sweep(name: str, launcher: list[str], epochs: int) -> dict[str, Any]:
    """One `aelab-train -m` of the 4 digits jobs into outputs/bench/<name>: wall time and the jobs' own times."""
    sweep_dir = OUT / name
    shutil.rmtree(sweep_dir, ignore_errors=True)  # resume=true would skip jobs completed by an earlier bench
    args = ["-m", *SWEEP_JOBS, f"trainer.max_epochs={epochs}", *launcher, f"hydra.sweep.dir={sweep_dir}"]
    start, launched = time.perf_counter(), time.time()
    proc = subprocess.run([str(BIN / "aelab-train"), *args], cwd=ROOT, env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"sweep {name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    jobs = [json.loads(p.read_text()) for p in sweep_dir.glob("*/result.json")]
    return {"wall_s": wall, "jobs": len(jobs), "completed": sum(j["state"] == "completed" for j in jobs),
            "job_wall_s": sum(j["wall_time_s"] for j in jobs), "first_log_s": first_log_s(sweep_dir, launched),
            "command": "aelab-train " + " ".join(args)}


def part_sweep(s: Settings) -> Part:
    """Part 4: the same 4 jobs through the basic launcher and through joblib with 2 workers."""
    log.info("part 4: 4-job digits sweep, serial then joblib n_jobs=2")
    serial = run_sweep("sweep_serial", [], s.sweep_epochs)
    joblib = run_sweep("sweep_joblib", ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], s.sweep_epochs)
    speedup = serial["wall_s"] / joblib["wall_s"]
    rows = [[name, r["completed"], r["wall_s"], r["job_wall_s"], r["wall_s"] - r["job_wall_s"] / workers,
             r["first_log_s"]]
            for name, r, workers in (("serial (basic launcher)", serial, 1), ("joblib n_jobs=2", joblib, 2))]
    rows.append(["speed-up serial/joblib", "", speedup, "", "", ""])
    return Part(title="4. Sweep: 4 digits jobs, serial vs joblib with 2 workers",
                columns=["launcher", "jobs completed", "wall s", "sum of jobs' wall_time_s", "wall outside jobs s",
                         "s to first job's data load"],
                rows=rows, target="speed-up >= 1.6x", met=speedup >= 1.6, data={"serial": serial, "joblib": joblib},
                notes=[f"`{serial['command']}`", f"`{joblib['command']}`",
                       "'wall outside jobs' = sweep wall time minus the jobs' own time (divided by 2 workers for "
                       "joblib): process start-up, imports, worker spawn, the sweep summary. 'first job's data load' = "
                       "launch to the earliest first line of a job's train.log."])


# ---- part 5: scaling ------------------------------------------------------------------------------------------
def fraction_row(fraction: float, datamodule: InMemoryDataModule, s: Settings) -> tuple[list[Any], dict]:
    """One data fraction (mlp, latent 16): aelab's epoch time and time per sample, the plain loop's as control."""
    runs = paired(["model/arch=mlp"], datamodule, fraction, s.scale_epochs, 1, f"part 5 data {fraction:.0%}")
    (ae_s, ae_rate), (_, plain_rate) = rate(runs["aelab"]), rate(runs["plain"])
    samples = runs["aelab"][0].samples
    row = [f"data {fraction:.0%}, latent 16", samples, ae_s, 1e6 / ae_rate, 1e6 / plain_rate]
    return row, {k: [e.seconds for e in v] for k, v in runs.items() if k != "aelab_gaps"}


def latent_row(latent: int, datamodule: InMemoryDataModule, s: Settings) -> list[Any]:
    """One latent size (mlp) at `s.latent_fraction` of the data: aelab's epoch time and time per sample."""
    log.info("part 5: latent %d", latent)
    overrides = ["model/arch=mlp", f"model.latent_dim={latent}", f"trainer.max_epochs={s.scale_epochs + 1}",
                 f"+trainer.limit_train_batches={s.latent_fraction}"]
    runs = fit_aelab(overrides, datamodule, f"scale_latent{latent}")[1:]
    seconds, per_s = rate(runs)
    return [f"data {s.latent_fraction:.0%}, latent {latent}", runs[0].samples, seconds, 1e6 / per_s, ""]


def part_scaling(s: Settings, datamodule: InMemoryDataModule) -> Part:
    """Part 5: data fractions at latent 16 (with the plain loop as control), then latent sizes."""
    results = [fraction_row(f, datamodule, s) for f in s.fractions]
    rows = [row for row, _ in results]
    spread = max(r[3] for r in rows) / min(r[3] for r in rows)
    plain_spread = max(r[4] for r in rows) / min(r[4] for r in rows)
    rows += [latent_row(d, datamodule, s) for d in s.latents]
    return Part(title="5. Scaling: aelab train epoch (model=ae, mlp) as the data and the latent size grow",
                columns=["run", "samples/epoch", "aelab s/epoch", "aelab us/sample", "plain us/sample"], rows=rows,
                target="linear in data: aelab us/sample across data fractions within 25% (max/min <= 1.25)",
                met=spread <= 1.25, data={f"{f}": raw for f, (_, raw) in zip(s.fractions, results)},
                notes=[f"max/min us/sample across data fractions: aelab {spread:.3f}, plain loop {plain_spread:.3f} "
                       "(the control: the same epochs without Lightning).",
                       f"{s.scale_epochs} measured epochs after 1 warm-up epoch (median); validation disabled; "
                       "the fraction is Lightning's limit_train_batches of the 430 batches of the train split."])


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


def run_parts(s: Settings, only: set[str]) -> list[Part]:
    """The selected parts, in order; the Fashion-MNIST datamodule is loaded once and shared."""
    start = time.perf_counter()
    datamodule = build(compose_cfg(["paths.output_dir=" + str(OUT / "runs")]).data)
    datamodule.setup()
    load_s = time.perf_counter() - start
    parts = []
    if "throughput" in only:
        parts.append(part_throughput(s, datamodule))
    if "data" in only:
        parts.append(part_data(s, datamodule, load_s))
    if "startup" in only:
        parts.append(part_startup(s))
    if "sweep" in only:
        parts.append(part_sweep(s))
    if "scaling" in only:
        parts.append(part_scaling(s, datamodule))
    return parts


def main(argv: list[str] | None = None) -> None:
    """Run the selected parts, write bench.json and bench.md, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a much shorter run, to check that the script works")
    parser.add_argument("--parts", default="throughput,data,startup,sweep,scaling", help="comma-separated subset")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    quiet_libraries()
    warnings.filterwarnings("ignore", ".*could not find the monitored key.*")  # validation is off on purpose
    torch.set_num_threads(torch_threads(None))  # what aelab.train.train sets for a single run
    settings, start, cpu_before = (QUICK if args.quick else Settings()), time.perf_counter(), cpu_seconds()
    shutil.rmtree(OUT / "runs", ignore_errors=True)
    parts = run_parts(settings, set(args.parts.split(",")))
    report = {"command": COMMAND + (" ARGS=--quick" if args.quick else ""), "quick": args.quick,
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "total_s": time.perf_counter() - start,
              "machine": {**machine(), "other_cores_busy": other_cores(cpu_before, time.perf_counter() - start)},
              "settings": asdict(settings), "parts": [asdict(p) for p in parts]}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (OUT / "bench.md").write_text(markdown(report, parts))
    show(parts)
    log.info("total %.0f s; wrote %s and %s", report["total_s"], OUT / "bench.json", OUT / "bench.md")


if __name__ == "__main__":
    main()
