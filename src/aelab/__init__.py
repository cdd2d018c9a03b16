"""aelab: autoencoder research framework (Hydra configs, one Lightning module, W&B tracking)."""

from pathlib import Path

__version__ = "0.1.0"
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")  # the checkout's conf/ (installed editable)
