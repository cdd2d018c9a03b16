"""Old import paths of moved modules keep working, with a DeprecationWarning: `import aelab.module` gives
`aelab.models.autoencoder`. Users' YAMLs and the configs stored in checkpoints name classes by these paths
(`_target_: aelab.module.AutoencoderModule`); the table is also the changelog's list of moved paths."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

MOVED = {  # old module path -> new module path
    "aelab.apply": "aelab.commands.apply",
    "aelab.apply_audio": "aelab.commands.apply_audio",
    "aelab.build": "aelab.core.build",
    "aelab.check": "aelab.commands.check",
    "aelab.checkpoint": "aelab.tracking.checkpoint",
    "aelab.callbacks.logging": "aelab.tracking.media",
    "aelab.colorspace": "aelab.data.colorspace",
    "aelab.console": "aelab.tracking.console",
    "aelab.density": "aelab.densities",
    "aelab.errors": "aelab.core.errors",
    "aelab.evaluate": "aelab.commands.evaluate",
    "aelab.export": "aelab.commands.export",
    "aelab.module": "aelab.models.autoencoder",
    "aelab.paper": "aelab.reporting.published",
    "aelab.report": "aelab.reporting.report",
    "aelab.runtime": "aelab.tracking.runtime",
    "aelab.skeleton": "aelab.commands.job",
    "aelab.stats": "aelab.reporting.cell",
    "aelab.tasks": "aelab.data.tasks",
    "aelab.train": "aelab.commands.train",
}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path of MOVED and loads it as the module at its new path (the same module object)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(fullname, self) if fullname in MOVED else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; the old path will be removed in a later release",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module at the new path is already loaded."""


def install() -> None:
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())
