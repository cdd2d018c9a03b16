"""The plain loop that `make bench` sets beside a user's `aelab-train` run: the same work, without the framework.

Run as a process of its own (`python scripts/bench_parts/plain_user.py <stamps.json> <run dir> <overrides...>`) so
that it pays what an `aelab-train` process pays per epoch and nothing else. What it does each epoch was fixed before
any optimisation of aelab (issue 19): the train steps (same model, init, data tensor, batches, optimizer and loss),
the train scalars summed on the device and one logged every `trainer.log_every_n_steps` steps, a validation pass
computing the loss and the same torchmetrics metrics on the whole val split, the val scalars written to a file, and
one `state_dict` save. It writes the same stamps as bench_parts.stamps.Stamps.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from aelab.core.build import build
from aelab.metrics.reconstruction import data_kind, reconstruction_metrics
from aelab.tracking.runtime import limit_threads
from bench_parts.common import compose_cfg, plain_step


def train_epoch(model, optimizer, x: torch.Tensor, perm: torch.Tensor, steps: int, bs: int, log_every: int,
                logged: list, bf16: bool) -> torch.Tensor:
    """One epoch of Adam steps on x[perm] in batches of bs; returns the summed loss (on the device)."""
    model.train()
    total = torch.zeros((), device=x.device)
    for i in range(steps):
        xb = x[perm[i * bs:(i + 1) * bs]]
        loss = plain_step(model, optimizer, xb, bf16)
        total += loss.detach() * len(xb)
        if i % log_every == 0:
            logged.append(float(loss))
    return total


@torch.no_grad()
def validate(model, metrics, x: torch.Tensor, batches: int, bs: int, bf16: bool) -> dict[str, float]:
    """Val loss and the torchmetrics metrics over the first `batches` val batches."""
    model.eval()
    total, n = torch.zeros((), device=x.device), 0
    for i in range(batches):
        xb = x[i * bs:(i + 1) * bs]
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            out, _ = model(xb)
            total += model.likelihood.nll(out, xb).sum()
            recon = model.reconstruct(xb)
        n += len(xb)
        metrics.update(recon.float(), xb)
    scores = {k: float(v) for k, v in metrics.compute().items()}
    metrics.reset()
    return {"val/loss": float(total) / n, **scores}


def main(stamps_path: str, run_dir: str, overrides: list[str]) -> None:
    """Fit as configured (max_epochs, limit_train_batches, limit_val_batches) and write the stamps."""
    cfg = compose_cfg(overrides)
    limit_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    datamodule = build(cfg.data, task=build(cfg.task), seed=cfg.seed)
    datamodule.setup()
    x, xv, bs, vbs = datamodule.train_set.x, datamodule.val_set.x, cfg.data.batch_size, cfg.data.eval_batch_size
    model = build(cfg.model).to(x.device)  # data.device (trainer=gpu) puts the data, and so the model, on the GPU
    model.configure_model()  # channels_last / compile when the config asks for them (trainer=gpu)
    bf16 = cfg.trainer.precision == "bf16-mixed"
    optimizer = build(cfg.model.optimizer)(params=model.parameters())
    metrics = reconstruction_metrics("val/", data_kind(cfg.data.shape)).to(x.device)
    steps = int(-(-len(x) // bs) * cfg.trainer.get("limit_train_batches", 1.0))
    val_batches = int(-(-len(xv) // vbs) * cfg.trainer.get("limit_val_batches", 1.0))
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamps, logged = {"first_step": time.time(), "epoch_starts": [], "step_ends": []}, []
    generator = torch.Generator().manual_seed(cfg.seed)
    for epoch in range(cfg.trainer.max_epochs):
        stamps["epoch_starts"].append(time.time())
        perm = torch.randperm(len(x), generator=generator)
        total = train_epoch(model, optimizer, x, perm, steps, bs, cfg.trainer.log_every_n_steps, logged, bf16)
        stamps["step_ends"].append(time.time())
        scalars = {"epoch": epoch, "train/loss": float(total) / (steps * bs), **validate(model, metrics, xv, val_batches, vbs, bf16)}
        with open(out / "scalars.jsonl", "a") as f:
            f.write(json.dumps(scalars) + "\n")
        torch.save(model.state_dict(), out / "last.pt")
    stamps["fit_end"] = time.time()
    Path(stamps_path).write_text(json.dumps(stamps))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
