"""Optional features and the pip extras that bring them: one import helper that fails with one line naming the extra.

The core install trains, logs, sweeps (joblib, SLURM) and reports; `aelab[audio]`, `aelab[restoration]`,
`aelab[optuna]`, `aelab[export]`, `aelab[explore]` and `aelab[fid]` add the rest (`aelab[all]`: every one).
Modules of an extra are imported inside the function that needs them (`require`), never when a module loads.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from aelab.core.errors import AelabError

# top-level module -> the extra that installs it (pyproject.toml's [project.optional-dependencies])
EXTRA_OF = {
    "soundfile": "audio", "noisereduce": "audio",
    "skimage": "restoration", "pywt": "restoration",
    "optuna": "optuna",
    "onnx": "export", "onnxscript": "export", "onnxruntime": "export",
    "gradio": "explore",
    "torch_fidelity": "fid",
}


class MissingExtraError(AelabError):
    """A feature was asked for whose optional packages are not installed."""


def message(extra: str, feature: str) -> str:
    """The one line: what was asked for, which extra it needs and the pip command that installs it."""
    return f"{feature} needs the {extra} extra: pip install 'aelab[{extra}]'"


def require(module: str, feature: str) -> ModuleType:
    """`module` imported, or MissingExtraError naming the extra EXTRA_OF gives its package, when it (or a module
    it imports) is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = (err.name or module).split(".")[0]  # the package pip installs
        extra = EXTRA_OF[module.split(".")[0]]
        raise MissingExtraError(f"{message(extra, feature)} ({missing} is not installed)") from err

