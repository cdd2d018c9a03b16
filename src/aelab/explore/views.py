"""The explorer's handlers: what each control of the page shows, as HTML and slider settings (no Gradio here)."""

from __future__ import annotations

import html
import json
import threading
from pathlib import Path

from aelab.explore.runs import RunInfo


class Explorer:
    """The runs of a folder, each opened on first use (one Session per run), and the page's handlers: each takes
    the run's name and returns what its outputs show (HTML, slider settings, the current base code)."""

    def __init__(self, runs: list[RunInfo], n: int) -> None:
        self.runs = {run.name: run for run in runs}
        self.n = n
        self.sessions: dict = {}
        self.lock = threading.Lock()

    def session(self, name: str):
        from aelab.explore.session import Session

        with self.lock:
            if name not in self.sessions:
                self.sessions[name] = Session(self.runs[name], self.n)
            return self.sessions[name]

    def map_props(self, name: str, method: str) -> dict:
        """The map's points [x, y, colour, thumbnail, label], its square box [x0, y0, side] and the legend."""
        from aelab.explore.render import PALETTE, data_uri, png

        s = self.session(name)
        xy = s.projection(method).xy
        low, high = xy.min(0), xy.max(0)
        side = float((high - low).max() * 1.1) or 1.0
        box = [float((low[0] + high[0] - side) / 2), float((low[1] + high[1] - side) / 2), side]
        labels = [int(y) for y in s.test["y"]]
        thumbs = [data_uri(png(x), "image/png") if s.kind == "image" else "" for x in s.test["target"]]
        points = [[float(a), float(b), PALETTE[y % len(PALETTE)], t, f"#{i} {s.label(y)}"]
                  for i, ((a, b), y, t) in enumerate(zip(xy, labels, thumbs))]
        legend = " ".join(f'<span style="color:{PALETTE[y % len(PALETTE)]}">&#9679; {html.escape(s.label(y))}</span>'
                          for y in sorted(set(labels)))
        return {"points": points, "box": box, "legend": legend}

    def decoded(self, name: str, z, caption: str) -> str:
        """The decoded code (d,) as the page's `#decoded` panel, the code itself in its data-code attribute."""
        import torch

        from aelab.explore.render import item

        s = self.session(name)
        z = torch.as_tensor(z, dtype=torch.float32).reshape(1, -1)
        code = json.dumps([float(v) for v in z[0]])
        return f"<div data-code='{code}'>" + item(s.decode(z)[0], s.kind, caption, s.rate, 196) + "</div>"

    def sliders(self, name: str, z) -> list[dict]:
        """Settings of every slider for base code z: range, position, label, visibility."""
        from aelab.explore.session import MAX_SLIDERS, STEP

        s = self.session(name)
        values, ranges = s.slider_values(z), s.slider_ranges()
        what = s.slider_basis[1]
        settings = [{"minimum": round(float(lo), 2), "maximum": round(float(hi), 2), "value": round(float(v), 2), "step": STEP,
                     "label": f"{what} {k}", "visible": True} for k, (v, (lo, hi)) in enumerate(zip(values, ranges))]
        return settings + [{"visible": False}] * (MAX_SLIDERS - len(settings))

    def example(self, name: str, i: int) -> tuple[str, str, object, list[dict]]:
        """Example i as its task shows it, its decoded code, the code (the sliders' base) and the sliders."""
        from aelab.explore.render import item

        s = self.session(name)
        i = min(max(int(i or 0), 0), len(s.codes) - 1)
        panels = "".join(item(x[0], s.kind, caption, s.rate) for caption, x in s.task_view(i).items())
        score = s.anomaly(i)
        if score is not None:
            verdict = "flagged as an anomaly" if score["flagged"] else "not flagged"
            truth = "" if score["anomaly"] is None else f" (truly {'an anomaly' if score['anomaly'] else 'normal'})"
            panels += (f"<p class='anomaly'>{score['score_name']} score {score['score']:.5g} against the stored threshold "
                       f"{score['threshold']:.5g}: {verdict}{truth}</p>")
        label = f"test example {i} ({s.label(int(s.test['y'][i]))})"
        z = s.codes[i].double().numpy()
        return f"<div class='strip'>{panels}</div>", self.decoded(name, z, f"code of {label}"), z, self.sliders(name, z)

    def moved(self, name: str, base, values: list[float]) -> str:
        s = self.session(name)
        return self.decoded(name, s.moved(base, values)[0], "code moved by the sliders")

    def clicked(self, name: str, method: str, value: str) -> tuple[str, object, list[dict]] | None:
        """A click on the map: the code of that point (inverse PCA, or the nearest test code), decoded."""
        import numpy as np

        if not value:
            return None
        x, y = json.loads(value)[:2]
        s = self.session(name)
        z, how = s.projection(method).to_code(np.array([x, y], np.float64), s.codes.double().numpy())
        page = self.decoded(name, z, f"map point ({x:.3f}, {y:.3f}): {how}")
        return f"<div data-point='{json.dumps([x, y])}'>{page}</div>", z, self.sliders(name, z)

    def samples(self, name: str, seed: int) -> str:
        from aelab.explore.render import strip

        s = self.session(name)
        x, how = s.sample(8, int(seed or 0))
        return f"<p>{html.escape(how)}</p>" + strip(x, s.kind, [""] * len(x), s.rate)

    def interpolation(self, name: str, a: int, b: int, steps: int) -> str:
        from aelab.explore.render import strip

        s = self.session(name)
        x = s.interpolate(int(a), int(b), int(steps))
        return strip(x, s.kind, [f"t={t / (len(x) - 1):.2f}" for t in range(len(x))], s.rate)

    def traversal(self, name: str, i: int, factor: str) -> str:
        from aelab.explore.render import strip

        s = self.session(name)
        if not factor:
            return "<p>this run's data has no generative factors (data=shapes has)</p>"
        x, captions = s.traverse(int(i), factor)
        return strip(x, s.kind, captions, s.rate)

    def recognition(self, name: str, i: int, upload: str | None) -> str:
        """The probe's top classes and the k nearest training codes for the uploaded image, else example i."""
        from aelab.explore.render import strip

        s = self.session(name)
        if upload:
            from aelab.data.inputs import image_inputs

            if s.kind != "image":
                return "<p>uploads are images; this run's data are not</p>"
            prep = s.state.get("preprocessing") or {"kind": "image", "shape": list(s.cfg.model.in_shape)}
            inputs = image_inputs([Path(upload)], Path(upload).parent, prep, colorize=False)  # read as training read
            if not inputs.names:
                return f"<p>{html.escape('; '.join(inputs.skipped))}</p>"
            done = "; ".join(inputs.report["converted"])
            x, what = inputs.x, "the uploaded image" + (f" ({done})" if done else "")
        else:
            x, what = s.test["x"][int(i) : int(i) + 1], f"test example {int(i)} ({s.label(int(s.test['y'][int(i)]))})"
        found = s.recognise(x)
        top = ", ".join(f"{c} {p:.0%}" for c, p in found["top"]) or "no probe (the training split has one class)"
        near = s.train_batch["target"][[n for n, _, _ in found["neighbours"]]]
        captions = [f"{label} (d={d:.2f})" for _, d, label in found["neighbours"]]
        return (f"<p>Probe on {html.escape(what)}: <b>{html.escape(top)}</b>. Nearest training codes:</p>"
                + strip(near, s.kind, captions, s.rate))

    def comparison(self, names: list[str]) -> str:
        """2-4 runs side by side: their test metrics, the same 8 test inputs reconstructed, their latent maps."""
        import torch

        from aelab.explore.render import PALETTE, data_uri, scatter_png, strip, table

        if not 2 <= len(names) <= 4:
            return "<p>pick 2 to 4 runs</p>"
        sessions = [self.session(n) for n in names]
        keys = sorted(set().union(*(self.runs[n].metrics for n in names)))
        rows = [[k, *(f"{self.runs[n].metrics[k]:.4g}" if k in self.runs[n].metrics else "" for n in names)] for k in keys]
        parts = [table(["metric", *names], rows) if keys else "<p>no test metrics recorded</p>"]
        first = sessions[0]
        parts.append("<h4>the same test inputs</h4>" + strip(first.test["x"][:8], first.kind, [""] * 8, first.rate))
        for name, s in zip(names, sessions):
            with torch.no_grad():
                out = s.model.reconstruct(s.test["x"][:8].to(s.model.device)).cpu()
            parts.append(f"<h4>{html.escape(name)}</h4>" + strip(out, s.kind, [""] * len(out), s.rate))
        maps = [data_uri(scatter_png(s.projection("PCA").xy, [PALETTE[int(y) % 10] for y in s.test["y"]], n), "image/png")
                for n, s in zip(names, sessions)]
        parts.append("<h4>latent maps (PCA)</h4><div class='strip'>" + "".join(f"<img src='{m}' width='260'>" for m in maps)
                     + "</div>")
        return f"<div class='compare' data-runs='{len(names)}'>" + "".join(parts) + "</div>"
