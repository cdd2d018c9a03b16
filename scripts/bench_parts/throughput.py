"""Part 1 of `make bench`: training throughput of aelab's default trainer against a hand-written loop."""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from statistics import median
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from aelab.callbacks.config import StoreConfig
from aelab.core.build import build
from aelab.data.base import InMemoryDataModule
from bench_parts.common import (
    FIT,
    OUT,
    Epoch,
    EpochTimer,
    Part,
    Settings,
    compose_cfg,
    epoch_to_epoch,
    log,
    plain_step,
    rate,
)


def fit_aelab(overrides: list[str], datamodule: InMemoryDataModule, name: str) -> list[Epoch]:
    """Build callbacks and trainer from the composed config as `aelab.commands.train.fit_and_test` does; fit; time epochs."""
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
    model, bs = build(cfg.model).to(x.device).train(), cfg.data.batch_size  # data.device=cuda: the GPU
    model.configure_model()  # channels_last / compile when the config asks for them (trainer=gpu)
    bf16 = cfg.trainer.precision == "bf16-mixed"
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator, done = torch.Generator().manual_seed(cfg.seed), []
    for _ in range(epochs):
        start, samples = time.perf_counter(), 0
        perm = torch.randperm(len(x), generator=generator)
        for i in range(steps):
            xb = x[perm[i * bs:(i + 1) * bs]]
            plain_step(model, optimizer, xb, bf16)
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
