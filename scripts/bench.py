"""`make bench`: aelab's speed side by side with plain PyTorch / torchvision / a bare import, on this machine.

Seven parts, each checked against its target (issues 6 and 19): (1) training throughput of the stripped trainer
(no validation, no logger) against a hand-written loop, (2) the in-memory train loader against torchvision's
FashionMNIST + ToTensor + DataLoader, (3) CLI start-up against `import torch`, (4) a 4-job digits sweep serially and
through joblib with 2 workers, (5) time per train epoch as the data and the latent size grow, (6) the run a user
launches (default config) per epoch and its fixed cost, before (`--base`, a commit) and after, against a plain loop
doing the same work, (7) the framework's overhead per training step on a tiny model, before and after.
Writes outputs/bench/bench.json and bench.md. `--quick` runs every part on a small fraction of the work (to check
the script, not to quote its numbers); `--device cuda` runs parts 6 and 7 on a GPU (trainer=gpu).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
import warnings
from dataclasses import asdict

from bench_parts.common import (
    COMMAND,
    OUT,
    QUICK,
    Part,
    Settings,
    compose_cfg,
    cpu_seconds,
    log,
    machine,
    markdown,
    other_cores,
    show,
)
from bench_parts.data import part_data
from bench_parts.overhead import part_overhead
from bench_parts.scaling import part_scaling
from bench_parts.startup import part_startup
from bench_parts.sweep import part_sweep
from bench_parts.throughput import part_throughput
from bench_parts.userrun import part_userrun

from aelab.commands.job import quiet_libraries
from aelab.core.build import build
from aelab.tracking.runtime import limit_threads

PARTS = "throughput,data,startup,sweep,scaling,userrun,overhead"


def run_parts(s: Settings, only: set[str], args: argparse.Namespace) -> list[Part]:
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
    if "userrun" in only:
        parts.append(part_userrun(s, args.base, args.device))
    if "overhead" in only:
        parts.append(part_overhead(s, args.base, args.device))
    return parts


def main(argv: list[str] | None = None) -> None:
    """Run the selected parts, write bench.json and bench.md, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a much shorter run, to check that the script works")
    parser.add_argument("--parts", default=PARTS, help=f"comma-separated subset of {PARTS}")
    parser.add_argument("--base", default="ae062a9", help="the commit measured as 'before' in parts 6 and 7")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="parts 6 and 7: cuda = trainer=gpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    quiet_libraries()
    warnings.filterwarnings("ignore", ".*could not find the monitored key.*")  # validation is off on purpose
    limit_threads(None)  # what aelab.commands.train.train sets for a single run
    settings, start, cpu_before = (QUICK if args.quick else Settings()), time.perf_counter(), cpu_seconds()
    shutil.rmtree(OUT / "runs", ignore_errors=True)
    unknown = set(args.parts.split(",")) - set(PARTS.split(","))
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}; choose from {PARTS}")
    parts = run_parts(settings, set(args.parts.split(",")), args)
    given = sys.argv[1:] if argv is None else argv
    report = {"command": COMMAND + (f" ARGS='{' '.join(given)}'" if given else ""), "quick": args.quick,
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
