"""Helpers of the tests: compose the real configs from conf/, run the real entry points, read their records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from aelab import CONF_DIR

ROOT = Path(CONF_DIR).parent
BIN = Path(sys.executable).parent
FAST = ["data=digits", "callbacks.progress=null"]
# a researcher's own bottleneck (a Python part outside aelab), written into the project make_project builds
BOTTLENECK = '''
"""A user's bottleneck: Gaussian noise on a deterministic code during training; emits code_l2."""
import torch

from aelab.bottlenecks.base import BottleneckOutput
from aelab.bottlenecks.deterministic import Deterministic


class NoisyCode(Deterministic):
    terms = ("code_l2",)

    def __init__(self, in_features: int, latent_dim: int, sigma: float = 0.1) -> None:
        super().__init__(in_features, latent_dim)
        self.sigma = sigma

    def forward(self, h):
        z = self.proj(h)
        z = z + self.sigma * torch.randn_like(z) if self.training else z
        return BottleneckOutput(z=z, terms={"code_l2": z.pow(2).sum(1)})
'''


def compose_cfg(overrides: list[str], output_dir: Path | None = None, config_name: str = "train") -> DictConfig:
    """Compose conf/<config_name>.yaml with overrides, the run folder set to `output_dir`."""
    extra = [f"paths.output_dir={output_dir}"] if output_dir is not None else []
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name=config_name, overrides=[*overrides, *extra])


def run_cli(command: str, args: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run a console script of this venv (aelab-train, aelab-eval, wandb) and capture its output."""
    full_env = {**os.environ, "WANDB_MODE": "offline", **(env or {})}
    return subprocess.run([str(BIN / command), *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=600)


def read_result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


BRIEF = ["trainer.max_epochs=1", "logger=none", "+trainer.limit_train_batches=5", "+trainer.limit_val_batches=2",
         "+trainer.limit_test_batches=2"]  # one short epoch of a few batches, no logger


def train_through_cli(runs: dict[str, list[str]], tmp_path: Path) -> dict[str, dict]:
    """One short epoch of each run through aelab-train, processes in parallel; each must complete; returns name ->
    result.json. A run's name is its model config and its folder, tmp_path / name; its list holds its own overrides."""
    def train(name: str) -> subprocess.CompletedProcess:
        return run_cli("aelab-train", [*FAST, f"model={name}", *BRIEF, *runs[name], f"hydra.run.dir={tmp_path / name}"])

    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        outs = dict(zip(runs, pool.map(train, runs)))
    results = {}
    for name, out in outs.items():
        assert out.returncode == 0, f"{name}:\n{out.stderr[-3000:]}"
        results[name] = read_result(tmp_path / name)
        assert results[name]["state"] == "completed", (name, results[name]["state"])
    return results


def wandb_summary(run: Path) -> dict:
    """The run's offline W&B log read back by `wandb leet inspect --summary --json`."""
    wandb_dir = Path(read_result(run)["wandb_dir"])
    out = run_cli("wandb", ["leet", "inspect", "--summary", "--json", str(wandb_dir)])
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


LIBRARY_WORDS = ("KeyError", "IndexError", "UnpicklingError", "MissingMandatoryValue", "weights_only", "Error executing job")


def fails_cleanly(args: list[str], expect: str, run: Path, command: str = "aelab-train") -> str:
    """Run the CLI; assert exit 1, no traceback nor library exception, `expect` on one output line, no completed
    record; that line."""
    out = run_cli(command, [*args, f"hydra.run.dir={run}"], env={"HYDRA_FULL_ERROR": ""})
    text = out.stdout + out.stderr
    assert out.returncode == 1, text[-2000:]
    assert "Traceback" not in text and not any(word in text for word in LIBRARY_WORDS), text[-3000:]
    lines = [line for line in text.splitlines() if expect in line]
    assert lines, f"{expect!r} not in:\n{text[-3000:]}"
    result = run / "result.json"
    assert not result.is_file() or json.loads(result.read_text())["state"] != "completed"
    return lines[0]


def make_project(root: Path) -> Path:
    """my_project/: conf/model/{half_kl_vae,noisy_ae}.yaml and userbn.py, outside the checkout."""
    (root / "conf" / "model").mkdir(parents=True)
    (root / "conf" / "model" / "half_kl_vae.yaml").write_text("defaults: [vae, _self_]\nname: half_kl_vae\nloss_weights: {kl: 0.5}\n")
    (root / "conf" / "model" / "noisy_ae.yaml").write_text(textwrap.dedent("""\
        defaults: [ae, _self_]
        name: noisy_ae
        bottleneck: {_target_: userbn.NoisyCode, sigma: 0.1}
        loss_weights: {code_l2: 1.0e-3}
        """))
    (root / "userbn.py").write_text(BOTTLENECK)
    return root


def write_run(sweep: Path, job: int, run: dict, metrics: dict, directions: dict, seed: int = 0,
              reference: dict | None = None, state: str = "completed") -> None:
    """A hand-written run folder: result.json and the composed config that carries the reference."""
    folder = sweep / str(job)
    (folder / ".hydra").mkdir(parents=True)
    record = {"state": state, "metrics": metrics, "higher_is_better": directions, "seed": seed,
              "run": {"data": "fashion_mnist", "arch": "conv", **run, "seed": seed}, "overrides": [f"seed={seed}"],
              "wall_time_s": 10.0, "started_at": 1000.0 + job, "finished_at": 1010.0 + job}
    (folder / "result.json").write_text(json.dumps(record))
    config = {"trainer": {"max_epochs": 3}, "model": {"_target_": "aelab.models.autoencoder.AutoencoderModule"}}
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump({**config, "reference": reference}))
