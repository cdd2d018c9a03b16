"""Safe checkpoint loading: `torch.load(weights_only=True)` only, then rebuild the model from the stored config."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from aelab.core.build import build
from aelab.core.errors import CheckpointError
from aelab.core.files import save_atomic

CONFIG_KEY = "aelab_config"  # the resolved run config inside every checkpoint (callbacks.config.StoreConfig)


def what_file(path: Path) -> str | None:
    """What a file that cannot be a PyTorch checkpoint is, judged from its bytes ("a text file", ...); None when it
    could be one (a readable zip archive with a data.pkl, torch.save's format)."""
    with path.open("rb") as handle:
        head = handle.read(4096)
    if not head:
        return "an empty file"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return "a truncated or damaged zip archive (an incomplete copy or download of a checkpoint?)"
        return None if any(n.endswith("data.pkl") for n in names) else "a zip archive that torch.save did not write"
    if head.startswith(b"\x80"):
        return "a Python pickle, not a torch.save zip checkpoint (pickles can run code, so aelab does not load them)"
    for magic, kind in MAGIC:
        if head.startswith(magic):
            return kind
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000:
        return "a safetensors file (weights without the config aelab needs)"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return f"not a checkpoint (binary content of an unknown kind, {path.stat().st_size} bytes)"
    return "a text file, not a checkpoint"


MAGIC = ((b"\x89HDF", "an HDF5 file (e.g. Keras weights), not a PyTorch checkpoint"),
         (b"\x1f\x8b", "a gzip file, not a checkpoint"), (b"\x89PNG", "a PNG image, not a checkpoint"),
         (b"\x93NUMPY", "a NumPy array file, not a checkpoint"))


def check_file(path: str | Path) -> Path:
    """The path, when it names a file that can be a checkpoint; else one line saying what it is (no torch import,
    so a wrong file is refused in a fraction of a second)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (runs keep theirs in <run>/checkpoints/)")
    kind = what_file(path)
    if kind is not None:
        raise CheckpointError(f"checkpoint {path} is {kind}")
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read an aelab checkpoint as plain tensors and containers; anything else gets one line saying what it is."""
    import torch

    path = check_file(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's message advises weights_only=False: never repeat that advice
        raise CheckpointError(f"checkpoint {path} holds Python objects other than tensors and plain containers: "
                              f"not an aelab checkpoint, and aelab does not run code from a checkpoint") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError):
        raise CheckpointError(f"checkpoint {path} is truncated or damaged (torch.load could not read it)") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"checkpoint {path} is a PyTorch file of another program (no state_dict), not an aelab run")
    if CONFIG_KEY not in ckpt:
        raise CheckpointError(f"checkpoint {path} is a Lightning checkpoint of another program (no '{CONFIG_KEY}'): "
                              f"aelab needs the config its runs store")
    return ckpt


APPLY_KEY = "aelab_apply"  # what aelab-apply needs beyond the weights: preprocessing, code density, threshold


def write_apply_state(path: str | Path, state: dict[str, Any]) -> None:
    """Add `state` (tensors and plain values) to a written checkpoint under APPLY_KEY, atomically."""
    path = Path(path)
    ckpt = load_checkpoint(path)
    ckpt[APPLY_KEY] = state
    save_atomic(ckpt, path)


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

