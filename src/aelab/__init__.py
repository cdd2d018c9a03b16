"""aelab: autoencoder research framework (Hydra configs, one Lightning module, W&B tracking)."""

__version__ = "0.1.0"
