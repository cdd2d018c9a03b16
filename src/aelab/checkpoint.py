"""Safe checkpoint loading: `torch.load(weights_only=True)` only, then rebuild the model from the stored config."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from aelab.build import build
from omegaconf import DictConfig, OmegaConf

from aelab.callbacks.config import CONFIG_KEY
from aelab.errors import CheckpointError


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint as plain tensors and containers; anything that would need to run code is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (runs keep theirs in <run>/checkpoints/)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unsafe content"
        raise CheckpointError(f"checkpoint {path} holds objects that weights_only loading refuses ({first})") from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} is truncated or not a PyTorch checkpoint ({type(err).__name__})") from err
    if not isinstance(ckpt, dict) or CONFIG_KEY not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"checkpoint {path} was not written by aelab-train (no '{CONFIG_KEY}' or state_dict)")
    return ckpt


APPLY_KEY = "aelab_apply"  # what aelab-apply needs beyond the weights: preprocessing, code density, threshold


def write_apply_state(path: str | Path, state: dict[str, Any]) -> None:
    """Add `state` (tensors and plain values) to a written checkpoint under APPLY_KEY, atomically."""
    path = Path(path)
    ckpt = load_checkpoint(path)
    ckpt[APPLY_KEY] = state
    tmp = path.with_name(f"{path.name}.tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)


IDENTITY = ("name", "arch", "latent_dim", "in_shape")  # what must match for weights to fit


def check_compatible(ckpt: dict[str, Any], model_cfg: DictConfig, path: str | Path) -> None:
    """Refuse, in one line, a checkpoint trained for another variant, architecture, latent size or data shape."""
    stored = ckpt[CONFIG_KEY]["model"]
    wanted = OmegaConf.to_container(model_cfg, resolve=True)
    diff = [f"{k}: checkpoint {stored.get(k)!r}, config {wanted.get(k)!r}" for k in IDENTITY if stored.get(k) != wanted.get(k)]
    if diff:
        raise CheckpointError(f"checkpoint {path} does not fit this model ({'; '.join(diff)})")


def rebuild_model(ckpt: dict[str, Any]) -> tuple[Any, DictConfig]:
    """Instantiate the stored model config and load the weights; return the module and the run config."""
    config = OmegaConf.create(ckpt[CONFIG_KEY])
    model = build(config.model)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint weights do not fit the model {config.model.name} "
                              f"(latent_dim={config.model.latent_dim}): {str(err).splitlines()[0]}") from err
    return model, config

