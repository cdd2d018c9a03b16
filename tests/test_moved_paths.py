"""Old import paths keep working after the modules moved into packages: every `_target_` that conf/ named before
the move still loads (with a DeprecationWarning), and a checkpoint whose stored config and density name the old
paths and kinds is evaluated and sampled from as before."""

from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path

import pytest
import torch
from hydra.utils import get_object

from aelab.core.moved import MOVED
from aelab.tracking.checkpoint import APPLY_KEY, CONFIG_KEY
from helpers import run_cli

BEFORE = Path(__file__).parent / "data" / "conf_targets_before_the_move.txt"
TARGETS = [line for line in BEFORE.read_text().splitlines() if line and not line.startswith("#")]
QUICK = ["data=digits", "model/arch=mlp", "logger=none", "trainer.max_epochs=1", "callbacks.progress=null",
         "callbacks.embeddings=null", "callbacks.samples=null", "callbacks.reconstructions=null", "eval=none"]


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_conf_named_before_the_move_loads(target: str) -> None:
    assert callable(get_object(target)), target


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_an_old_module_path_is_the_new_module_with_a_warning(old: str, new: str) -> None:
    import sys

    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def old_paths(value: object) -> object:
    """A stored config with every moved module path written the old way (the reverse of MOVED)."""
    if isinstance(value, dict):
        return {k: old_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [old_paths(v) for v in value]
    if isinstance(value, str):
        for old, new in sorted(MOVED.items(), key=lambda item: -len(item[1])):
            if value.startswith(f"{new}."):
                return old + value[len(new):]
    return value


@pytest.mark.slow
def test_a_checkpoint_that_names_the_old_paths_is_evaluated_and_sampled(tmp_path: Path) -> None:
    run = tmp_path / "run"
    out = run_cli("aelab-train", [*QUICK, "model=rae", "model.latent_dim=3", f"hydra.run.dir={run}"])
    assert out.returncode == 0, out.stderr[-2000:]
    best = run / "checkpoints" / "best.ckpt"
    ckpt = torch.load(best, weights_only=True)
    ckpt[CONFIG_KEY] = old_paths(ckpt[CONFIG_KEY])
    assert ckpt[CONFIG_KEY]["model"]["_target_"] == "aelab.module.AutoencoderModule"
    assert ckpt[CONFIG_KEY]["model"]["density"]["_target_"] == "aelab.density.LatentGMM"
    ckpt[APPLY_KEY]["density"]["kind"] = "gmm"  # as checkpoints stored it before densities named their class
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluated = run_cli("aelab-eval", [f"ckpt_path={old}", "eval=none", f"hydra.run.dir={tmp_path / 'eval'}"])
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads((tmp_path / "eval" / "result.json").read_text())["state"] == "completed"
    for name, path in (("old", old), ("new", best)):  # sampling needs the stored mixture: unfitted, it refuses
        sampled = run_cli("aelab-apply", [f"ckpt_path={path}", "mode=sample", "n=4", f"output={tmp_path / name}"])
        assert sampled.returncode == 0, sampled.stderr[-2000:]
    pngs = sorted(p.name for p in (tmp_path / "new").glob("*.png"))
    assert len(pngs) == 4 and all((tmp_path / "old" / n).read_bytes() == (tmp_path / "new" / n).read_bytes() for n in pngs)
