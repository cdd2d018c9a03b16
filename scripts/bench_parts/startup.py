"""Part 3 of `make bench`: CLI start-up against a bare `import torch`."""

from __future__ import annotations

import subprocess
import time
from statistics import median

from bench_parts.common import BIN, ENV, ROOT, Part, Settings, log


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
