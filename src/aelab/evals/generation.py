"""Generation: samples, interpolations between test pairs and per-dimension latent traversals as image grids, and
sample quality as a Frechet distance (Heusel et al. 2017) in the feature space of a small classifier that aelab
trains on the same dataset and caches (`test/frechet_clf`; it is not FID and is comparable only within one
dataset and one cached classifier). `test/frechet_clf_train` is the same distance for real training images, the
floor set by finite samples. In the same features, improved precision and recall (Kynkaanniemi et al. 2019;
`test/precision`: samples that look real, `test/recall`: real images the samples cover). torchmetrics' Inception
FID (`test/fid`) runs only when torch-fidelity is installed (`aelab[fid]`) and the Inception weights file is
local: `eval.generation.inception_weights`, else torch-fidelity's file in the torch hub cache.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from aelab.core.rng import seeded
from aelab.data.base import InMemoryDataModule, intensities
from aelab.evals.base import Evaluation, Evaluator, fit_code_density, split_codes
from aelab.metrics.frechet import cached_feature_classifier, features, frechet_distance
from aelab.metrics.precision_recall import precision_recall
from aelab.models.api import GenerativeAutoencoder

BATCH = 256  # feature classifier batch size
INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"  # the file torch-fidelity looks for


def save_grid(images: torch.Tensor, nrow: int, path: Path) -> Path:
    """A PNG grid of images (N, C, H, W) in [0, 1]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(make_grid(images.clamp(0, 1).cpu(), nrow=nrow, padding=1, pad_value=1.0), path)
    return path


@torch.no_grad()
def traversals(model: GenerativeAutoencoder, z: torch.Tensor, dims: int, steps: int, span: float) -> torch.Tensor:
    """Decode z (d,) with one dimension at a time swept over +-span std of the codes: (dims*steps, C, H, W)."""
    grid = z.repeat(dims * steps, 1)  # (dims*steps, d)
    offsets = torch.linspace(-span, span, steps)
    for j in range(dims):
        grid[j * steps:(j + 1) * steps, j] = z[j] + offsets
    return model.decode(grid.to(model.device)).cpu()


def inception_fid(samples: torch.Tensor, real: torch.Tensor, weights: str | Path | None = None) -> tuple[float | None, str]:
    """torchmetrics' FID with the Inception weights file `weights` (default: torch-fidelity's file in the torch hub
    cache), when torch-fidelity is installed and the file exists; else None and a note why not. Never downloads."""
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        return None, "Inception FID skipped: torch-fidelity is not installed (pip install 'aelab[fid]')"
    path = Path(weights) if weights else Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS
    if not path.is_file():
        return None, f"Inception FID skipped: no Inception weights file at {path} (eval.generation.inception_weights)"
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(normalize=True, feature_extractor_weights_path=str(path))
    for images, real_flag in ((real, True), (samples, False)):
        for chunk in images.expand(-1, 3, -1, -1).split(500):  # grayscale -> 3 channels
            fid.update(chunk.clamp(0, 1), real=real_flag)
    return float(fid.compute()), f"Inception FID computed with torchmetrics and the weights in {path}"


class Generation(Evaluator):
    """Grids `samples.png`, `interpolations.png`, `traversals.png`; `test/frechet_clf` on `n` samples."""

    higher_is_better = {"frechet_clf": False, "fid": False, "precision": True, "recall": True,
                        "frechet_clf_train": None}  # the floor (train images vs test): the same for every model, not ranked

    def __init__(self, n: int = 5000, cache_dir: str = "data/feature_nets", classifier_steps: int = 2000,
                 pairs: int = 8, steps: int = 10, traverse_dims: int = 10, span: float = 3.0, inception: bool = True,
                 inception_weights: str | None = None, pr_k: int = 3) -> None:
        self.n, self.cache_dir, self.classifier_steps = n, Path(cache_dir), classifier_steps
        self.pairs, self.steps, self.traverse_dims, self.span, self.inception = pairs, steps, traverse_dims, span, inception
        self.inception_weights, self.pr_k = inception_weights, pr_k

    def skip_reason(self, model: GenerativeAutoencoder, data: InMemoryDataModule) -> str | None:
        return None if len(data.shape) == 3 else f"needs image data, {data.name} has shape {data.shape}"

    def __call__(self, model: GenerativeAutoencoder, data: InMemoryDataModule, out_dir: Path) -> Evaluation:
        with seeded(0):  # model.sample draws inside the model from the global RNG: seeded here, restored after
            if model.samples_from_density:  # sample from a density of the training codes
                fit_code_density(model, data)
            test = data.whole("test")
            n = min(self.n, len(test["target"]))
            with torch.no_grad():
                samples = torch.cat([model.sample(len(c)).cpu() for c in torch.arange(n).split(1000)]).clamp(0, 1)
                x0, x1 = test["x"][:self.pairs].to(model.device), test["x"][self.pairs:2 * self.pairs].to(model.device)
                lines = model.interpolate(x0, x1, self.steps).flatten(0, 1)  # (pairs*steps, C, H, W)
            codes = split_codes(model, data, "test", 1000)[0]
            dims = min(self.traverse_dims, codes.shape[1])
            sweep = traversals(model, codes[0], dims, self.steps, self.span * float(codes.std(0).mean()))
            images = {"test/samples": save_grid(samples[:64], 8, out_dir / "eval_samples.png"),
                      "test/interpolations": save_grid(lines, self.steps, out_dir / "interpolations.png"),
                      "test/traversals": save_grid(sweep, self.steps, out_dir / "traversals.png")}
            if data.normal_classes is None:
                metrics, notes = self.frechet(data, samples, test)
            else:
                metrics, notes = {}, ["frechet_clf skipped: the classifier needs every class (one-class training data)"]
            if self.inception:
                fid, note = inception_fid(samples, test["target"][:n], self.inception_weights)
                notes.append(note)
                if fid is not None:
                    metrics["test/fid"] = fid
            return Evaluation(metrics=metrics, images=images, notes=notes)

    def frechet(self, data: InMemoryDataModule, samples: torch.Tensor, test: dict[str, torch.Tensor]
                ) -> tuple[dict[str, float], list[str]]:
        """Frechet distances of samples and of training images to as many test images, and the samples' precision and
        recall, in classifier features."""
        train, real = data.split("train"), test["target"][:len(samples)]
        path = self.cache_dir / f"{data.name}_{'x'.join(map(str, data.shape))}.pt"
        classifier, accuracy = cached_feature_classifier(path, intensities(train.x), train.y, data.shape, data.num_classes,
                                                         x_test=test["target"], y_test=test["y"],
                                                         epochs=math.ceil(self.classifier_steps * BATCH / len(train)),
                                                         batch_size=BATCH)
        real_f, sample_f = features(classifier, real), features(classifier, samples)
        train_f = features(classifier, intensities(train.x[:len(real)]))
        metrics = {"test/frechet_clf": frechet_distance(sample_f, real_f),
                   "test/frechet_clf_train": frechet_distance(train_f, real_f),
                   **{f"test/{k}": v for k, v in precision_recall(real_f, sample_f, self.pr_k).items()}}
        acc = f"{accuracy:.3f}" if accuracy is not None else "unknown"
        return metrics, [f"feature classifier {path} (test accuracy {acc}); {len(real)} samples vs {len(real)} test images"]
