"""`aelab-explore <run folder | sweep folder>`: a trained model's latent space as a local web page (Gradio).

The latent map (test codes in 2-D, coloured by label, thumbnails on hover; a click decodes that point), sliders
that move the chosen example's code, samples, interpolation, attribute traversal (data with factors), recognition
(probe and k-NN), the chosen example as its task shows it (noisy / restored / clean, the anomaly score against the
stored threshold, audio players) and, for a sweep, 2-4 runs side by side. Binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
import threading
from pathlib import Path

from aelab.errors import AelabError
from aelab.explore.runs import RunInfo, find_runs, free_port

CSS = """
.px { image-rendering: pixelated; }
.strip { display: flex; flex-wrap: wrap; gap: 6px; }
figure { margin: 2px; display: inline-block; text-align: center; font-size: 12px; }
table.metrics td, table.metrics th { padding: 2px 8px; font-size: 13px; }
"""

MAP_TEMPLATE = """
<div class="latent-map" style="position: relative">
<svg viewBox="${box[0]} ${-box[1] - box[2]} ${box[2]} ${box[2]}" width="400" height="400" data-box="${JSON.stringify(box)}"
     style="background: #fafafa; border: 1px solid #ddd; cursor: crosshair">
${points.map((p, i) => `<circle cx="${p[0]}" cy="${-p[1]}" r="${box[2] / 130}" fill="${p[2]}" data-i="${i}"></circle>`).join('')}
${value ? `<path d="M ${JSON.parse(value)[0]} ${-JSON.parse(value)[1]} m -${box[2] / 40} 0 h ${box[2] / 20} m -${box[2] / 40} -${box[2] / 40} v ${box[2] / 20}"
   stroke="black" stroke-width="${box[2] / 250}"></path>` : ''}
</svg>
<div class="tip" style="display: none; position: absolute; pointer-events: none; background: white;
     border: 1px solid #999; padding: 2px; font-size: 11px; text-align: center"><img class="px" width="56"><div></div></div>
<div style="font-size: 12px">${legend}</div>
</div>
"""

MAP_JS = """
element.addEventListener('mousemove', (e) => {
  const tip = element.querySelector('.tip');
  const dot = e.target.closest ? e.target.closest('circle[data-i]') : null;
  if (!tip) return;
  if (!dot) { tip.style.display = 'none'; return; }
  const p = props.points[+dot.dataset.i];
  const img = tip.querySelector('img');
  img.style.display = p[3] ? '' : 'none';
  if (p[3]) img.src = p[3];
  tip.querySelector('div').textContent = p[4];
  const r = element.getBoundingClientRect();
  tip.style.left = (e.clientX - r.left + 12) + 'px';
  tip.style.top = (e.clientY - r.top + 12) + 'px';
  tip.style.display = 'block';
});
element.addEventListener('click', (e) => {
  const svg = element.querySelector('svg');
  if (!svg || !svg.contains(e.target)) return;
  const pt = svg.createSVGPoint();
  pt.x = e.clientX; pt.y = e.clientY;
  const q = pt.matrixTransform(svg.getScreenCTM().inverse());
  props.value = JSON.stringify([q.x, -q.y, Date.now()]);
});
"""


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
        return f"<div data-code='{code}'>" + item(s.decode(z)[0], s.kind, caption, rate(s), 196) + "</div>"

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
        panels = "".join(item(x[0], s.kind, caption, rate(s)) for caption, x in s.task_view(i).items())
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
        return f"<p>{html.escape(how)}</p>" + strip(x, s.kind, [""] * len(x), rate(s))

    def interpolation(self, name: str, a: int, b: int, steps: int) -> str:
        from aelab.explore.render import strip

        s = self.session(name)
        x = s.interpolate(int(a), int(b), int(steps))
        return strip(x, s.kind, [f"t={t / (len(x) - 1):.2f}" for t in range(len(x))], rate(s))

    def traversal(self, name: str, i: int, factor: str) -> str:
        from aelab.explore.render import strip

        s = self.session(name)
        if not factor:
            return "<p>this run's data has no generative factors (data=shapes has)</p>"
        x, captions = s.traverse(int(i), factor)
        return strip(x, s.kind, captions, rate(s))

    def recognition(self, name: str, i: int, upload: str | None) -> str:
        """The probe's top classes and the k nearest training codes for the uploaded image, else example i."""
        from aelab.explore.render import strip

        s = self.session(name)
        if upload:
            from aelab.apply import image_inputs

            if s.kind != "image":
                return "<p>uploads are images; this run's data are not</p>"
            inputs = image_inputs([Path(upload)], Path(upload).parent, list(s.cfg.model.in_shape), colorize=False)
            if not inputs.names:
                return f"<p>{html.escape('; '.join(inputs.skipped))}</p>"
            x, what = inputs.x, "the uploaded image"
        else:
            x, what = s.test["x"][int(i) : int(i) + 1], f"test example {int(i)} ({s.label(int(s.test['y'][int(i)]))})"
        found = s.recognise(x)
        top = ", ".join(f"{c} {p:.0%}" for c, p in found["top"]) or "no probe (the training split has one class)"
        near = s.train_batch["target"][[n for n, _, _ in found["neighbours"]]]
        captions = [f"{label} (d={d:.2f})" for _, d, label in found["neighbours"]]
        return (f"<p>Probe on {html.escape(what)}: <b>{html.escape(top)}</b>. Nearest training codes:</p>"
                + strip(near, s.kind, captions, rate(s)))

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
        parts.append("<h4>the same test inputs</h4>" + strip(first.test["x"][:8], first.kind, [""] * 8, rate(first)))
        for name, s in zip(names, sessions):
            with torch.no_grad():
                out = s.model.reconstruct(s.test["x"][:8].to(s.model.device)).cpu()
            parts.append(f"<h4>{html.escape(name)}</h4>" + strip(out, s.kind, [""] * len(out), rate(s)))
        maps = [data_uri(scatter_png(s.projection("PCA").xy, [PALETTE[int(y) % 10] for y in s.test["y"]], n), "image/png")
                for n, s in zip(names, sessions)]
        parts.append("<h4>latent maps (PCA)</h4><div class='strip'>" + "".join(f"<img src='{m}' width='260'>" for m in maps)
                     + "</div>")
        return f"<div class='compare' data-runs='{len(names)}'>" + "".join(parts) + "</div>"


def rate(s) -> int:
    """The sample rate of an audio run's clips (for players), 16 kHz for other data (unused)."""
    return int(s.data.preprocessing().get("sample_rate", 16000)) if s.kind == "signal" else 16000


def build_app(explorer: Explorer, first: str):
    """The page: run picker (sweeps), latent map, chosen example, sliders, generate / interpolate / traverse /
    recognise, and the compare tab."""
    import gradio as gr

    from aelab.explore.session import MAX_SLIDERS, PROJECTIONS

    s = explorer.session(first)  # the first run opens now: a broken checkpoint fails before the page exists
    quick = {"queue": False, "show_progress": "hidden"}
    with gr.Blocks(title="aelab explorer", analytics_enabled=False) as app:
        gr.Markdown("## aelab explorer")
        with gr.Row():
            run = gr.Dropdown(list(explorer.runs), value=first, label="run", elem_id="run", scale=3,
                              visible=len(explorer.runs) > 1)
            method = gr.Dropdown(list(PROJECTIONS), value="PCA", label="latent map projection", elem_id="projection")
            index = gr.Number(0, precision=0, minimum=0, label="test example #", elem_id="example")
        with gr.Tab("Explore"):
            with gr.Row():
                with gr.Column():
                    latent_map = gr.HTML("", html_template=MAP_TEMPLATE, js_on_load=MAP_JS, elem_id="latent-map",
                                         apply_default_css=False, **explorer.map_props(first, "PCA"))
                    gr.Markdown("Hover a point for its test image; click anywhere to decode that spot (PCA is "
                                "inverted; t-SNE and UMAP decode the nearest test code).")
                with gr.Column():
                    task_view, decoded, z0, settings = explorer.example(first, 0)
                    chosen = gr.HTML(task_view, elem_id="chosen")
                    decoded_view = gr.HTML(decoded, elem_id="decoded")
                    base = gr.State(z0)
                with gr.Column():
                    sliders = [gr.Slider(elem_id=f"slider-{k}", **setting) for k, setting in enumerate(settings)]
            with gr.Accordion("Generate", open=False):
                seed = gr.Number(0, precision=0, label="seed")
                sample_button = gr.Button("sample 8", elem_id="sample")
                samples = gr.HTML(elem_id="samples")
            with gr.Accordion("Interpolate", open=False):
                with gr.Row():
                    a, b = gr.Number(0, precision=0, label="from example #"), gr.Number(1, precision=0, label="to example #")
                    steps = gr.Slider(3, 16, value=8, step=1, label="steps")
                interpolate_button = gr.Button("interpolate", elem_id="interpolate")
                line = gr.HTML(elem_id="interpolation")
            with gr.Accordion("Attribute traversal", open=False, visible=bool(s.factor_names)) as traverse_box:
                factor = gr.Dropdown(s.factor_names, value=(s.factor_names or [None])[0], label="factor")
                traverse_button = gr.Button("traverse the chosen example", elem_id="traverse")
                traversal = gr.HTML(elem_id="traversal")
            with gr.Accordion("Recognise", open=False):
                upload = gr.Image(type="filepath", label="an image of your own (else the chosen example)", height=160)
                recognise_button = gr.Button("recognise", elem_id="recognise")
                recognition = gr.HTML(elem_id="recognition")
        with gr.Tab("Compare runs", visible=len(explorer.runs) > 1):
            picked = gr.CheckboxGroup(list(explorer.runs), value=list(explorer.runs)[:2], label="runs (2-4)",
                                      elem_id="compare-runs")
            compare_button = gr.Button("compare", elem_id="compare")
            comparison = gr.HTML(elem_id="comparison")

        def show_example(name, i):
            view, dec, z, sets = explorer.example(name, i)
            return [view, dec, z, *(gr.Slider(**k) for k in sets)]

        def open_run(name, how, i):
            has = explorer.session(name).factor_names
            return [gr.HTML(value="", **explorer.map_props(name, how)), *show_example(name, i),
                    gr.Accordion(visible=bool(has)), gr.Dropdown(choices=has, value=(has or [None])[0])]

        def click(name, how, value):
            found = explorer.clicked(name, how, value)
            if found is None:
                return [gr.skip()] * (2 + MAX_SLIDERS)
            dec, z, sets = found
            return [dec, z, *(gr.Slider(**k) for k in sets)]

        example_outputs = [chosen, decoded_view, base, *sliders]
        run.change(open_run, [run, method, index], [latent_map, *example_outputs, traverse_box, factor])
        method.change(lambda name, how: gr.HTML(value="", **explorer.map_props(name, how)), [run, method], latent_map)
        index.change(show_example, [run, index], example_outputs, **quick)
        latent_map.change(click, [run, method, latent_map], [decoded_view, base, *sliders], **quick)
        for slider in sliders:
            slider.input(lambda name, z, *v: explorer.moved(name, z, v[: len(explorer.session(name).slider_basis[0])]),
                         [run, base, *sliders], decoded_view, trigger_mode="always_last", **quick)
        sample_button.click(explorer.samples, [run, seed], samples)
        interpolate_button.click(explorer.interpolation, [run, a, b, steps], line)
        traverse_button.click(explorer.traversal, [run, index, factor], traversal)
        recognise_button.click(explorer.recognition, [run, index, upload], recognition)
        compare_button.click(explorer.comparison, picked, comparison)
    return app


def main(argv: list[str] | None = None) -> None:
    """Find the runs, check the port, open the first run, serve the page until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="aelab-explore", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a run folder (holding checkpoints/best.ckpt) or a sweep folder of runs")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 picks a free one)")
    parser.add_argument("--n", type=int, default=500, help="test examples on the latent map (default 500)")
    args = parser.parse_args(argv)
    try:
        runs, left_out = find_runs(args.folder)
        port = free_port(args.host, args.port)
        for line in left_out:
            print(f"aelab-explore: left out {line}", file=sys.stderr)
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        try:
            import gradio  # noqa: F401
        except ImportError:
            sys.exit("aelab-explore: error: the explorer needs Gradio: pip install 'aelab[explore]'")
        from aelab.skeleton import quiet_libraries

        quiet_libraries()
        explorer = Explorer(runs, args.n)
        app = build_app(explorer, runs[0].name)
    except AelabError as err:
        sys.exit(f"aelab-explore: error: {err}")
    app.launch(server_name=args.host, server_port=port, prevent_thread_lock=True, quiet=True, css=CSS,
               footer_links=[])
    print(f"aelab-explore: {len(runs)} run(s) from {args.folder} at http://{args.host}:{port}/ (Ctrl-C stops it)",
          flush=True)
    try:
        app.block_thread()
    except KeyboardInterrupt:
        app.close()
