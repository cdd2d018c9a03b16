"""One run opened for exploration: its model, test examples, codes and what the page asks of them.

Everything here goes through the module API (encode, decode, reconstruct, sample, interpolate, anomaly scores) and
returns tensors; aelab.explore.app turns them into the page. Codes are those of the first `n` test examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from aelab.densities import LatentGMM
from aelab.evals.base import batched
from aelab.explore.runs import RunInfo
from aelab.metrics.reconstruction import data_kind
from aelab.tracking.trained import open_run

MAX_SLIDERS = 16  # larger codes get one slider per principal direction of the test codes
PROJECTIONS = ("PCA", "t-SNE", "UMAP")
FIT_ON = 5000  # training codes for the probe, the k-NN index, the attribute means and a density fitted here
STEP = 0.01  # slider resolution, in code units


@dataclass
class Projection:
    """2-D positions of the test codes and the way back from a point of the map to a code."""

    method: str
    xy: np.ndarray  # (N, 2)
    pca: object | None  # the fitted sklearn PCA (invertible); None: t-SNE / UMAP, a point goes to the nearest code

    def to_code(self, point: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, str]:
        """The code (d,) for a map point (2,): inverse PCA, else the nearest test code; and how it was found."""
        if self.pca is not None:
            return self.pca.inverse_transform(point[None].astype(np.float64))[0], "inverse PCA of the clicked point"
        i = int(np.argmin(((self.xy - point) ** 2).sum(1)))
        return codes[i], f"{self.method} cannot be inverted: the nearest test code (example {i})"


def project(codes: np.ndarray, method: str, seed: int = 0) -> Projection:
    """The codes (N, d) on the plane by PCA, t-SNE (scikit-learn) or UMAP (umap-learn, when installed)."""
    from sklearn.decomposition import PCA

    if method == "PCA" or codes.shape[1] < 2:
        pca = PCA(n_components=min(2, codes.shape[1]), svd_solver="full").fit(codes.astype(np.float64))
        xy = pca.transform(codes.astype(np.float64))
        return Projection("PCA", np.pad(xy, ((0, 0), (0, 2 - xy.shape[1]))), pca)
    if method == "t-SNE":
        from sklearn.manifold import TSNE

        xy = TSNE(n_components=2, perplexity=min(30.0, len(codes) - 1.0), random_state=seed).fit_transform(codes)
        return Projection(method, xy.astype(np.float64), None)
    if method == "UMAP":
        try:
            import umap
        except ImportError as err:
            raise ValueError("UMAP needs umap-learn (pip install umap-learn); PCA and t-SNE are available") from err
        return Projection(method, umap.UMAP(random_state=seed).fit_transform(codes).astype(np.float64), None)
    raise ValueError(f"projection {method!r} is not one of {', '.join(PROJECTIONS)}")


class Session:
    """A run's model with its test examples and codes; the page's requests answered as tensors."""

    def __init__(self, run: RunInfo, n: int = 500) -> None:
        trained = open_run(run.checkpoint)
        self.run = run
        self.model, self.cfg, self.task = trained.model, trained.config, trained.task
        self.state = trained.apply_state or {}
        self.data = trained.datamodule()
        self.data.setup()
        self.test = self.data.fixed_batch("test", n)  # {"x": model inputs, "target": clean, "y": labels, ...}
        self.kind = data_kind(list(self.cfg.model.in_shape))  # image, signal or vector
        self.rate = int(self.data.preprocessing().get("sample_rate", 16000))  # audio players' rate (audio runs)
        self.codes = self.encode(self.test["x"])  # (N, d)
        self.classes = [str(c) for c in getattr(self.data, "classes", [])] or None
        self.projections: dict[str, Projection] = {}

    # ---- codes and decoding ---------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return batched(self.model.encode, x, device=self.model.device)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoded examples (B, *shape) of codes (B, d)."""
        return self.model.decode(z.to(self.model.device, torch.float32)).cpu()

    def label(self, y: int) -> str:
        return self.classes[y] if self.classes and 0 <= y < len(self.classes) else str(y)

    def projection(self, method: str) -> Projection:
        if method not in self.projections:
            self.projections[method] = project(self.codes.double().numpy(), method)
        return self.projections[method]

    # ---- sliders: one per code dimension, or per principal direction of the test codes ------------------------
    @cached_property
    def slider_basis(self) -> tuple[np.ndarray, str]:
        """Rows (K, d) that the sliders move along, and what they are: the unit vectors of the code dimensions,
        or the first MAX_SLIDERS principal directions of the test codes (orthonormal)."""
        d = self.codes.shape[1]
        if d <= MAX_SLIDERS:
            return np.eye(d), "code dimension"
        from sklearn.decomposition import PCA

        pca = PCA(n_components=MAX_SLIDERS, svd_solver="full").fit(self.codes.double().numpy())
        return pca.components_, "principal direction"

    def slider_values(self, z: np.ndarray) -> np.ndarray:
        """The sliders' positions (K,) for a code: its coordinates along the basis, rounded to the slider STEP."""
        return np.round(self.slider_basis[0] @ np.asarray(z, np.float64) / STEP) * STEP

    def slider_ranges(self) -> np.ndarray:
        """(K, 2): each slider spans the test codes' coordinates along its direction, widened by a quarter."""
        coords = self.codes.double().numpy() @ self.slider_basis[0].T  # (N, K)
        low, high = coords.min(0), coords.max(0)
        pad = 0.25 * (high - low) + STEP
        return np.round(np.stack([low - pad, high + pad], 1) / STEP) * STEP

    def moved(self, base: np.ndarray, values: list[float]) -> torch.Tensor:
        """The code (1, d) after the sliders moved from `slider_values(base)` to `values`: base + offset @ basis."""
        offset = np.asarray(values, np.float64) - self.slider_values(base)  # (K,)
        return torch.from_numpy(np.asarray(base, np.float64) + offset @ self.slider_basis[0]).float()[None]

    # ---- the chosen example, as its task shows it -------------------------------------------------------------
    def example(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i : i + 1] for k, v in self.test.items()}

    @torch.no_grad()
    def task_view(self, i: int) -> dict[str, torch.Tensor]:
        """Panels (name -> (1, *shape)) for example i: input and output, and the clean target when it differs."""
        ex = self.example(i)
        output = self.model.reconstruct(ex["x"].to(self.model.device)).cpu()
        names = {"denoise": ("noisy input", "restored", "clean"),  # images and audio (task=denoise_audio)
                 "colorize": ("gray input", "colorized", "colour original")}.get(self.task, ("input", "reconstruction", ""))
        panels = {names[0]: ex["x"], names[1]: output}
        if names[2] and not torch.equal(ex["x"], ex["target"]):
            panels[names[2]] = ex["target"]
        return panels

    def anomaly(self, i: int) -> dict[str, float | bool | str] | None:
        """The stored threshold's score of example i (anomaly runs only): score, threshold, flagged, truth."""
        threshold = self.state.get("threshold")
        if threshold is None:
            return None
        from aelab.evals.anomaly import SCORE_SEED, all_scores

        ex = self.example(i)
        score = float(all_scores(self.model, ex["x"], ex["target"], seed=SCORE_SEED)[threshold["score"]][0])
        truth = bool(self.data.is_anomaly(ex["y"])[0]) if self.data.normal_classes is not None else None
        return {"score_name": threshold["score"], "score": score, "threshold": float(threshold["threshold"]),
                "flagged": score > float(threshold["threshold"]), "anomaly": truth}

    # ---- generation ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, seed: int) -> tuple[torch.Tensor, str]:
        """n new examples and where their codes came from: the prior, or a density of the training codes."""
        torch.manual_seed(seed)
        model = self.model
        if not model.samples_from_density:
            return model.sample(n).cpu(), "codes from the bottleneck's prior"
        how = f"codes from the run's fitted {type(model.density).__name__}" if model.density is not None else ""
        if model.density is None or not model.density.fitted:
            if model.density is None:
                model.density = LatentGMM(n_components=10)
                how = "codes from a 10-component Gaussian mixture fitted here (the run has no model.density)"
            model.fit_density(self.train_codes)
            how = how or f"codes from a {type(model.density).__name__} fitted here on {len(self.train_codes)} training codes"
        return model.sample(n).cpu(), how

    def interpolate(self, i: int, j: int, steps: int) -> torch.Tensor:
        """(steps, *shape): decoded straight line from example i's code to example j's."""
        with torch.no_grad():
            return self.model.interpolate(self.test["x"][i : i + 1], self.test["x"][j : j + 1], steps)[0].cpu()

    # ---- training codes: recognition and attribute traversal ----------------------------------------------------
    @cached_property
    def train_batch(self) -> dict[str, torch.Tensor]:
        return self.data.fixed_batch("train", FIT_ON)

    @cached_property
    def train_codes(self) -> torch.Tensor:
        return self.encode(self.train_batch["x"])

    @cached_property
    def factor_names(self) -> list[str]:
        """The generative factors of the data (data=shapes), empty for data without them."""
        return list(getattr(self.data, "factor_names", [])) if "factors" in self.test else []

    def traverse(self, i: int, factor: str) -> tuple[torch.Tensor, list[str]]:
        """Example i's code moved to each value of a factor: z_i + mean(codes with value v) - mean(codes with its
        value), decoded (V, *shape), with a caption per value (attribute vectors, as in White 2016)."""
        k = self.factor_names.index(factor)
        values = self.train_batch["factors"][:, k]
        means = {int(v): self.train_codes[values == v].mean(0) for v in values.unique()}
        own = int(self.test["factors"][i, k])
        z = self.codes[i] + torch.stack([m - means[own] for m in means.values()])  # (V, d)
        return self.decode(z), [f"{factor}={v}" + (" (its own)" if v == own else "") for v in means]

    @cached_property
    def probe(self):
        """A standardised logistic-regression probe on the training codes (as eval.probe fits it); None when the
        training split has one class (one-class runs): nothing to tell apart."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        if len(self.train_batch["y"].unique()) < 2:
            return None
        probe = Pipeline([("scale", StandardScaler()), ("logreg", LogisticRegression(max_iter=1000))])
        return probe.fit(self.train_codes.numpy(), self.train_batch["y"].numpy())

    def recognise(self, x: torch.Tensor, k: int = 5) -> dict:
        """For one input (1, *shape): the probe's class probabilities (top 3; none without a probe) and its k
        nearest training codes (indices into the training batch, distances, labels)."""
        z = self.encode(x).numpy()
        top: list[tuple[str, float]] = []
        if self.probe is not None:
            proba = self.probe.predict_proba(z)[0]
            top = [(self.label(int(self.probe.classes_[c])), float(proba[c])) for c in np.argsort(proba)[::-1][:3]]
        dist = np.linalg.norm(self.train_codes.numpy() - z, axis=1)
        nearest = np.argsort(dist)[:k]
        return {"top": top, "neighbours": [(int(n), float(dist[n]), self.label(int(self.train_batch["y"][n]))) for n in nearest]}
