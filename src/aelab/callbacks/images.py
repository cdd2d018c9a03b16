"""Reconstruction grid of a fixed val batch: inputs in the top row, reconstructions below (signals (C, L): one
panel a clip, the input and its reconstruction drawn over each other)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid, save_image  # noqa: E402

from aelab.tracking.media import log_image  # noqa: E402


class ReconstructionGrid(pl.Callback):
    """Every `every_n_epochs` epochs and after the last one: `recon_epochNNN.png` in the run folder and W&B."""

    def __init__(self, dirpath: str, every_n_epochs: int = 5, n: int = 16) -> None:
        self.dirpath, self.every_n_epochs, self.n = Path(dirpath), every_n_epochs, n

    @torch.no_grad()
    def write(self, trainer: pl.Trainer, module: pl.LightningModule) -> Path:
        x = trainer.datamodule.fixed_batch("val", self.n)["x"].to(module.device)
        was_training = module.training
        module.eval()
        recon = module.reconstruct(x)
        module.train(was_training)
        path = self.dirpath / f"recon_epoch{trainer.current_epoch:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if x.ndim == 3:
            waveforms({"input": x[:4, 0].cpu(), "reconstruction": recon[:4, 0].cpu()}, path)  # (B, C, L) -> (4, L)
        else:
            grid = make_grid(torch.cat([x, recon.clamp(0, 1)]).cpu(), nrow=len(x), padding=1, pad_value=1.0)  # 2 rows
            save_image(grid, path)
        log_image(trainer, "val/reconstructions", path, caption=f"epoch {trainer.current_epoch}: inputs / reconstructions")
        return path

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        epoch, last = trainer.current_epoch, trainer.max_epochs - 1
        if (epoch + 1) % self.every_n_epochs == 0 or epoch == last or trainer.fast_dev_run:
            self.write(trainer, module)


def waveforms(lines: dict[str, torch.Tensor], path: Path) -> Path:
    """One panel a clip: each named (N, L) tensor's n-th clip drawn in panel n (the first in grey)."""
    n = len(next(iter(lines.values())))
    fig, axes = plt.subplots(n, 1, figsize=(8, 1.5 * n), dpi=100, sharex=True, squeeze=False)
    for k, (label, clips) in enumerate(lines.items()):
        for ax, clip in zip(axes[:, 0], clips):
            ax.plot(clip.numpy(), color="0.6" if k == 0 else f"C{k - 1}", linewidth=0.6, label=label)
    axes[0, 0].legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
