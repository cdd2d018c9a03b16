"""aelab: autoencoder research framework (Hydra configs, one Lightning module, W&B tracking)."""

from pathlib import Path

__version__ = "0.1.0"
# conf/ at the top of the checkout; src/aelab/conf links to it, so a wheel carries the same files as aelab/conf/
CONF_DIR = str((Path(__file__).parent / "conf").resolve())

from aelab.core import moved as _moved  # noqa: E402  (old import paths of moved modules, with a warning)

_moved.install()
