"""Part 5 of `make bench`: time per train epoch as the data and the latent size grow."""

from __future__ import annotations

from typing import Any

from aelab.data.base import InMemoryDataModule
from bench_parts.common import Part, Settings, log, rate
from bench_parts.throughput import fit_aelab, paired


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
