"""Part 7 of `make bench`: the framework's cost per training step, on a model so small that compute is negligible.

An mlp autoencoder with one hidden layer of 8 units and a 2-d code on the 8x8 digits, batches of 16: the plain
loop's step is a fraction of a millisecond, so aelab's ms per step minus the plain loop's is what Lightning and
aelab add to every step (hooks, the optimizer closure, logging, callbacks). On a GPU, where a small model's step
takes well under a millisecond, this number decides the efficiency. Each side ("before" = the base commit's code,
"after" = this tree) runs in processes of its own (`python bench_parts/overhead.py <epochs> <rounds> <device> <threads> [overrides]` with
PYTHONPATH pointing at that code), alternating with the plain loop inside the process; the processes alternate too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from statistics import median

MULTI = "model.steps_per_call=8"
TINY = ["data=digits", "data.batch_size=16", "model/arch=mlp", "model.encoder.hidden=[8]", "model.latent_dim=2"]


def worker(epochs: int, rounds: int, device: str, threads: int, extra: list[str]) -> dict[str, list[float]]:
    """ms per step of aelab's trainer (the stripped config of part 1, plus `extra`) and of the plain loop, `rounds`
    times each."""
    import torch

    from aelab.commands.job import quiet_libraries
    from aelab.core.build import build
    from bench_parts.common import compose_cfg
    from bench_parts.throughput import fit_aelab, fit_plain

    quiet_libraries()
    torch.set_num_threads(threads)
    tiny = TINY + (["trainer=gpu"] if device == "cuda" else [])
    datamodule = build(compose_cfg(tiny).data)
    datamodule.setup()
    steps = len(datamodule.train_dataloader())  # optimizer steps per epoch (batches of data.batch_size)
    out: dict[str, list[float]] = {"aelab": [], "plain": []}
    for _ in range(rounds):
        runs = [f"trainer.max_epochs={epochs + 1}", *tiny]
        out["aelab"] += [1e3 * e.seconds / steps for e in fit_aelab([*runs, *extra], datamodule, "overhead")[1:]]
        out["plain"] += [1e3 * e.seconds / steps for e in fit_plain(runs, datamodule.train_set.x, steps, epochs + 1)[1:]]
    return out


def run_side(src: Path, epochs: int, rounds: int, device: str, threads: int, extra: list[str]) -> dict[str, list[float]]:
    """One worker process on the code under `src`, aelab's runs with the overrides `extra`."""
    from bench_parts.common import BIN, ENV, ROOT

    env = {**ENV, "PYTHONPATH": f"{src}:{ROOT / 'scripts'}"}
    proc = subprocess.run([str(BIN / "python"), __file__, str(epochs), str(rounds), device, str(threads), *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"overhead worker on {src} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def part_overhead(s, base_commit: str, device: str):
    """Part 7: ms per step, aelab minus the plain loop, before and after, in alternating processes."""
    from bench_parts.common import ROOT, Part, log
    from bench_parts.userrun import materialise

    sides = {"before": (materialise(base_commit) / "src", []), "after": (ROOT / "src", []),
             f"after, {MULTI}": (ROOT / "src", [MULTI])}
    raw: dict[str, dict[str, list[float]]] = {side: {"aelab": [], "plain": []} for side in sides}
    for r in range(s.overhead_processes):
        for side in list(sides)[r % 3:] + list(sides)[:r % 3]:
            log.info("part 7 process %d/%d: %s", r + 1, s.overhead_processes, side)
            src, extra = sides[side]
            for key, values in run_side(src, s.overhead_epochs, s.overhead_rounds, device, s.user_threads, extra).items():
                raw[side][key] += values
    rows = []
    for side, runs in raw.items():
        overheads = [a - p for a, p in zip(runs["aelab"], runs["plain"])]
        rows.append([side, median(runs["aelab"]), median(runs["plain"]), median(overheads),
                     f"{min(overheads):.3f} .. {max(overheads):.3f}"])
    return Part(title=f"7. Framework overhead per training step (tiny mlp on digits, {device})",
                columns=["code", "aelab ms/step", "plain ms/step", "overhead ms/step (median)", "overhead range"],
                rows=rows, target=f"after (with {MULTI} if needed): overhead < 0.3 ms per step",
                met=min(row[3] for row in rows[1:]) < 0.3, data=raw,
                notes=[f"`{' '.join(TINY)}`, {s.user_threads} torch thread(s), the stripped trainer of part 1 (logger=none, image callbacks off, no "
                       f"validation); {s.overhead_processes} processes per side, alternating, each "
                       f"{s.overhead_rounds} x (aelab fit, plain fit) of 1 warm-up + {s.overhead_epochs} measured "
                       "epochs; overhead = aelab epoch minus the plain epoch of the same round, per step.",
                       f"before = commit {base_commit}, after = this tree; `{MULTI}` (opt-in) takes 8 of the "
                       "datamodule's batches per Lightning call and makes one optimizer step on each."])


if __name__ == "__main__":
    print(json.dumps(worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5:])))
