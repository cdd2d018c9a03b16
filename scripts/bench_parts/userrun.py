"""Part 6 of `make bench`: the run a user launches, before and after, against a plain loop doing the same work.

Each round runs three processes for each architecture, in an order rotated every round so that the machine's drift
hits all three alike: `aelab-train` with the code of the base commit ("before", extracted with `git archive`),
`aelab-train` with this tree's code ("after"), and bench_parts/plain_user.py ("plain"). The aelab runs use the
default configuration (validation every epoch with its metrics, checkpoints, the default callbacks, W&B offline,
the test pass) with eval=none; bench_parts.stamps.Stamps, added by a config override, stamps the first step, each
epoch start and the last step. From the stamps: the per-epoch cost (an epoch start to the next: train, validation,
checkpoints, callbacks) and the fixed cost (process start to the first step, plus the last step to the process
exit minus one epoch's validation and checkpoint).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from pathlib import Path
from statistics import median
from typing import Any

from bench_parts.common import BIN, ENV, OUT, ROOT, Part, Settings, log

SCRIPTS = ROOT / "scripts"
SIDES = ("before", "after", "plain")


def materialise(base: str) -> Path:
    """src/ and conf/ of commit `base`, extracted once into outputs/bench/base-<base>/ (git archive)."""
    dest = OUT / f"base-{base}"
    if not (dest / "src").is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", base, "src", "conf"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def overrides(arch: str, s: Settings, device: str) -> list[str]:
    """The user's command, shortened to `s.user_epochs` epochs of `s.user_fraction` of the train and val batches, with
    `s.user_threads` torch threads (1: on a machine that other jobs share, 2 threads wait on each other)."""
    return [f"model/arch={arch}", "eval=none", "logger=wandb", f"threads={s.user_threads}", f"trainer.max_epochs={s.user_epochs}",
            f"+trainer.limit_train_batches={s.user_fraction}", f"+trainer.limit_val_batches={s.user_fraction}",
            *(["trainer=gpu"] if device == "cuda" else [])]


def launch(side: str, arch: str, s: Settings, device: str, base: Path, run_dir: Path) -> dict[str, Any]:
    """One process in a fresh run folder; its stamps and wall-clock launch and exit times."""
    shutil.rmtree(run_dir, ignore_errors=True)  # resume=true would skip or continue an earlier bench's run
    stamps = run_dir.with_suffix(".stamps.json")
    src = base / "src" if side == "before" else ROOT / "src"
    pools = {name: str(s.user_threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    env = {**ENV, **pools, "AELAB_BENCH_STAMPS": str(stamps), "PYTHONPATH": f"{src}:{SCRIPTS}"}
    if side == "plain":
        cmd = [str(BIN / "python"), str(SCRIPTS / "bench_parts" / "plain_user.py"), str(stamps), str(run_dir),
               *overrides(arch, s, device)]
    else:
        cmd = [str(BIN / "aelab-train"), *overrides(arch, s, device), f"hydra.run.dir={run_dir}",
               "+callbacks.bench_stamps._target_=bench_parts.stamps.Stamps"]
    launched = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} {arch} failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return {"launched": launched, "exited": time.time(), **json.loads(stamps.read_text())}


def costs(run: dict[str, Any]) -> dict[str, float]:
    """Per-epoch seconds (epochs after the first, start to next start) and the fixed costs of one process."""
    starts, ends = run["epoch_starts"], run["step_ends"]
    epochs = [b - a for a, b in zip(starts[1:], starts[2:])]
    between = median(b - e for e, b in zip(ends, starts[1:]))  # validation + checkpoints after an epoch's steps
    startup = run["first_step"] - run["launched"]
    teardown = run["exited"] - ends[-1] - between
    return {"epoch_s": median(epochs), "between_s": between, "startup_s": startup, "teardown_s": teardown}


def import_seconds() -> float:
    """Wall time of `python -c "import pytorch_lightning"` (what the fixed-cost target does not count)."""
    start = time.perf_counter()
    subprocess.run([str(BIN / "python"), "-c", "import pytorch_lightning"], check=True, env=ENV)
    return time.perf_counter() - start


def median_ci(values: list[float], draws: int = 2000) -> tuple[float, float, float]:
    """Median and its 95% percentile-bootstrap interval (seeded: the same values give the same interval)."""
    rng = random.Random(0)
    meds = sorted(median(rng.choices(values, k=len(values))) for _ in range(draws))
    return median(values), meds[int(0.025 * draws)], meds[int(0.975 * draws) - 1]


def rounds(s: Settings, archs: tuple[str, ...], device: str, base: Path) -> dict[str, Any]:
    """`s.user_rounds` rounds of (before, after, plain) per architecture, the order rotated every round."""
    out: dict[str, Any] = {arch: {side: [] for side in SIDES} for arch in archs}
    out["import_pl_s"] = []
    for r in range(s.user_rounds):
        out["import_pl_s"].append(import_seconds())
        for arch in archs:
            for side in SIDES[r % 3:] + SIDES[:r % 3]:
                log.info("part 6 round %d/%d: %s %s", r + 1, s.user_rounds, arch, side)
                run = launch(side, arch, s, device, base, OUT / "user" / f"{arch}_{side}_{r}")
                out[arch][side].append({**run, **costs(run)})
    return out


def ratio_cell(plain: list[float], aelab: list[float]) -> str:
    """Per-round throughput ratio aelab/plain (= plain seconds / aelab seconds): median [95% CI]."""
    mid, lo, hi = median_ci([p / a for p, a in zip(plain, aelab)])
    return f"{mid:.3f} [{lo:.3f}, {hi:.3f}]"


def part_userrun(s: Settings, base_commit: str, device: str) -> Part:
    """Part 6: per-epoch and fixed cost of the user's run, before and after, with the plain loop beside them."""
    base, archs = materialise(base_commit), ("mlp", "conv")
    raw = rounds(s, archs, device, base)
    import_pl = median(raw["import_pl_s"])
    rows, met = [], True
    for arch in archs:
        sec = {side: [r["epoch_s"] for r in raw[arch][side]] for side in SIDES}
        fixed = {side: [r["startup_s"] + r["teardown_s"] - import_pl for r in raw[arch][side]] for side in SIDES[:2]}
        after_ratio = median(p / a for p, a in zip(sec["plain"], sec["after"]))
        met = met and after_ratio >= 0.95 and median(fixed["after"]) < 3.0
        for side in SIDES[:2]:
            runs = raw[arch][side]
            rows.append([arch, side, median(sec[side]), median(sec["plain"]), ratio_cell(sec["plain"], sec[side]),
                         median(r["startup_s"] for r in runs), median(r["teardown_s"] for r in runs),
                         median(fixed[side])])
    return Part(
        title="6. The user's run: aelab-train (default config, W&B offline, eval=none) before/after vs a plain loop",
        columns=["arch", "code", "s/epoch", "plain s/epoch", "ratio aelab/plain, median [95% CI]",
                 "start to 1st step s", "last step to exit s", "fixed s beyond import pytorch_lightning"],
        rows=rows, target="after: ratio >= 0.95 and fixed cost beyond `import pytorch_lightning` < 3 s, every arch",
        met=met, data={"base_commit": base_commit, "import_pl_s": raw["import_pl_s"],
                       **{arch: raw[arch] for arch in archs}},
        notes=[f"before = commit {base_commit} (git archive into {base.relative_to(ROOT)}), after = this tree; "
               f"{s.user_rounds} rounds, each running before, after and plain for each arch in a rotated order.",
               f"Each run: threads={s.user_threads}, {s.user_epochs} epochs of {s.user_fraction:.0%} of the train and of the val batches "
               "(Lightning's limit_*_batches; the plain loop takes the same counts); the test pass is whole. "
               "s/epoch = median over rounds of an epoch start to the next (train, validation with its metrics, "
               "checkpoints, callbacks), epochs after the first.",
               "plain (scripts/bench_parts/plain_user.py, fixed before any optimisation): the same model, init, "
               "data tensor, batches, optimizer and loss; train scalars summed on the device, one logged every "
               "log_every_n_steps; a validation pass with the loss and the same torchmetrics metrics (SSIM "
               "included) every epoch; val scalars written to a file; one state_dict save per epoch.",
               f"fixed = start to first step + last step to exit (minus one epoch's validation and checkpoint) "
               f"- `import pytorch_lightning` ({import_pl:.2f} s here, median of {len(raw['import_pl_s'])}).",
               "95% CI: percentile bootstrap of the median of the per-round ratios.",
               f"Every process gets OMP/OPENBLAS/MKL_NUM_THREADS={s.user_threads}, so that the base commit's "
               "BLAS pools (not capped by `threads` before this work) do not contend with the other jobs on a "
               "shared machine: without it its end-of-fit GMM fits took 70-85 s instead of about 1 s here."])
