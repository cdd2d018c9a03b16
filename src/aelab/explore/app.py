"""`aelab-explore <run folder | sweep folder>`: a trained model's latent space as a local web page (Gradio).

The latent map (test codes in 2-D, coloured by label, thumbnails on hover; a click decodes that point), sliders
that move the chosen example's code, samples, interpolation, attribute traversal (data with factors), recognition
(probe and k-NN), the chosen example as its task shows it (noisy / restored / clean, the anomaly score against the
stored threshold, audio players) and, for a sweep, 2-4 runs side by side. Binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys

from aelab.core.errors import AelabError
from aelab.core.extras import require
from aelab.explore.runs import find_runs, free_port
from aelab.explore.views import Explorer

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
        runs, notes = find_runs(args.folder)
        port = free_port(args.host, args.port)
        for line in notes:
            print(f"aelab-explore: {line}", file=sys.stderr)
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        require("gradio", "aelab-explore")
        from aelab.tracking.console import quiet_libraries

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
