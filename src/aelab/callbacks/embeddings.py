"""Latent embedding at the end of fitting: a W&B table (label, thumbnail, z0..z{d-1}) and a 2-D PCA scatter."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from pytorch_lightning.loggers import WandbLogger  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

from aelab.tracking.media import log_image  # noqa: E402


def pca_scatter(z: np.ndarray, labels: np.ndarray, path: Path, title: str) -> Path:
    """Scatter of the first two principal components of z, coloured by class."""
    xy = PCA(n_components=min(2, *z.shape)).fit_transform(z) if z.shape[1] > 2 else z  # fewer than 2 examples: 1 PC
    xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    points = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=6)
    ax.legend(*points.legend_elements(), title="class", fontsize=7, loc="best")
    ax.set(title=title, xlabel="PC 1", ylabel="PC 2")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


class LatentEmbedding(pl.Callback):
    """Encodes the first `n` val examples once fitting ends; writes `latent_pca.png` and logs `val/embeddings`."""

    def __init__(self, dirpath: str, n: int = 500) -> None:
        self.dirpath, self.n = Path(dirpath), n

    @torch.no_grad()
    def on_fit_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        batch = trainer.datamodule.fixed_batch("val", self.n)
        module.eval()
        z = module.encode(batch["x"].to(module.device)).cpu().numpy()
        labels = batch["y"].numpy()
        self.dirpath.mkdir(parents=True, exist_ok=True)
        path = pca_scatter(z, labels, self.dirpath / "latent_pca.png", f"{module.hparams.name}: PCA of z (val)")
        log_image(trainer, "val/latent_pca", path)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.log({"val/embeddings": self.table(batch["x"], labels, z)})

    @staticmethod
    def table(x: torch.Tensor, labels: np.ndarray, z: np.ndarray):
        """wandb.Table ready for the embedding projector: label, thumbnail, then one column per latent dim."""
        import wandb

        codes = [f"z{i}" for i in range(z.shape[1])]
        if x.ndim != 4:  # signals and table rows: no thumbnails
            return wandb.Table(columns=["label", *codes], data=[[int(y), *map(float, zi)] for y, zi in zip(labels, z)])
        thumbs = (x.clamp(0, 1) * 255).byte().permute(0, 2, 3, 1).numpy()  # (N, C, H, W) -> (N, H, W, C)
        rows = [[int(y), wandb.Image(t.squeeze(-1) if t.shape[-1] == 1 else t), *map(float, zi)]
                for y, t, zi in zip(labels, thumbs, z)]
        return wandb.Table(columns=["label", "image", *codes], data=rows)
