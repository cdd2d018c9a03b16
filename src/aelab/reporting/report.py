"""`aelab-report <sweep folder>`: paper-style tables from the run folders alone (no W&B API).

Rows are variant x latent_dim (plus arch/data when they vary), columns the chosen metrics as mean +- std over
seeds with n; the best mean per column is marked. Writes report.md/.csv/.tex/.html and one plot per metric
(metric against latent_dim, a line per variant) into the sweep folder, and prints the table. Failed or
unfinished runs are listed, never averaged in.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import sys
from pathlib import Path

from aelab.reporting import published as paper
from aelab.reporting.cell import Cell
from aelab.tracking.run import read_record
from aelab.tracking.sweep import dashboard_commands

KEYS = ("model", "arch", "data", "latent_dim", "normal_classes")
DESCRIBED = {"model", "model/arch", "data", "model.latent_dim", "data.normal_classes"}  # overrides that KEYS show
BOOKKEEPING = ("seed", "experiment", "threads", "logger", "resume", "paths.", "hydra", "callbacks.")  # never a row


def directions(runs: list[tuple[Path, dict]]) -> dict[str, bool | None]:
    """Higher-is-better per metric, as the metrics declared it in the records (result.json `higher_is_better`)."""
    found: dict[str, bool | None] = {}
    for _, record in runs:
        found.update(record.get("higher_is_better") or {})
    return found


def arrow(metric: str, direction: dict[str, bool | None], up: str = "↑", down: str = "↓") -> str:
    """The metric's name with its declared direction; no arrow when nothing declared one."""
    d = direction.get(metric)
    return metric if d is None else f"{metric} {up if d else down}"


def load_runs(sweep: Path) -> list[tuple[Path, dict]]:
    """(folder, result.json) for every run folder below the sweep folder."""
    runs = [(p.parent, read_record(p)) for p in sorted(sweep.rglob("result.json"))]
    if not runs:
        raise SystemExit(f"error: no run folders (result.json) under {sweep}")
    return runs


def overrides(record: dict) -> dict[str, str]:
    """The run's command-line overrides as key -> value, without those KEYS show and bookkeeping (seed, paths, ...)."""
    pairs = (o.lstrip("+").partition("=") for o in record.get("overrides") or [] if not o.startswith("~"))
    return {k: v for k, sep, v in pairs if sep and k not in DESCRIBED and not k.startswith(BOOKKEEPING)}


def group(runs: list[tuple[Path, dict]], metrics: list[str]) -> tuple[list[str], dict[tuple, dict[str, Cell]], dict]:
    """Row-key columns that vary (KEYS, then any other override that differs between runs, e.g. task.space), per
    row key the metric cells of completed runs, and the keys that do not vary."""
    done = [r for _, r in runs if r["state"] == "completed"]
    values = [{**{k: r.get("run", {}).get(k) for k in KEYS}, **overrides(r)} for r in done]
    named = list(dict.fromkeys(k for v in values for k in v if k not in KEYS))
    varying = [k for k in KEYS if len({v.get(k) for v in values}) > 1 or k in ("model", "latent_dim")]
    varying += [k for k in named if len({v.get(k) for v in values}) > 1]
    constant = {k: done[0].get("run", {}).get(k) for k in KEYS if k not in varying} if done else {}
    rows: dict[tuple, dict[str, Cell]] = {}
    for r, v in zip(done, values):
        key = tuple(v.get(k) for k in varying)
        cells = rows.setdefault(key, {m: Cell() for m in metrics})
        for m in metrics:
            if m in r["metrics"]:
                cells[m].add(r["metrics"][m], r.get("seed"))
    return varying, sort_rows(rows), constant


def sort_rows(rows: dict[tuple, dict[str, Cell]]) -> dict[tuple, dict[str, Cell]]:
    return dict(sorted(rows.items(), key=lambda kv: tuple(sort_key(v) for v in kv[0])))


def sort_key(value: object) -> tuple[int, float, str]:
    """Numbers in numeric order before names in alphabetical order."""
    return (0, float(value), "") if isinstance(value, (int, float)) else (1, 0.0, str(value))


def best_rows(rows: dict[tuple, dict[str, Cell]], metrics: list[str], direction: dict[str, bool | None]) -> dict[str, tuple]:
    """Per metric with a declared direction, the row with the best mean (undeclared metrics are not ranked)."""
    best = {}
    for m in metrics:
        scored = [(cells[m].mean, key) for key, cells in rows.items() if cells[m].values]
        if scored and direction.get(m) is not None:
            best[m] = (max if direction[m] else min)(scored, key=lambda s: s[0])[1]
    return best


def write_csv(path: Path, varying: list[str], rows: dict, metrics: list[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*varying, *[f"{m}_{s}" for m in metrics for s in ("mean", "std", "n")]])
        for key, cells in rows.items():
            w.writerow([*key, *[v for m in metrics for v in (cells[m].mean, cells[m].std, cells[m].n)]])


def markdown(varying: list[str], rows: dict, metrics: list[str], best: dict, failed: list, direction: dict) -> str:
    arrows = [arrow(m, direction) for m in metrics]
    lines = ["| " + " | ".join([*varying, *arrows]) + " |", "|" + "---|" * (len(varying) + len(metrics))]
    for key, cells in rows.items():
        vals = [f"**{cells[m].text()}**" if best.get(m) == key else cells[m].text() for m in metrics]
        lines.append("| " + " | ".join([*map(str, key), *vals]) + " |")
    lines += ["", "Mean ± sample std over seeds (n runs); bold: best mean per column."]
    if failed:
        lines += ["", "Failed or unfinished runs (not averaged in):", ""]
        lines += [f"- `{folder}`: {r['state']} {r.get('error', '')} ({' '.join(r.get('overrides', []))})" for folder, r in failed]
    return "\n".join(lines) + "\n"


def latex(varying: list[str], rows: dict, metrics: list[str], best: dict, direction: dict) -> str:
    esc = lambda s: str(s).replace("_", r"\_")  # noqa: E731
    head = " & ".join([*map(esc, varying), *[arrow(esc(m), {esc(m): direction.get(m)}, r"$\uparrow$", r"$\downarrow$")
                                            for m in metrics]])
    body = []
    for key, cells in rows.items():
        vals = []
        for m in metrics:
            c = cells[m]
            text = f"{c.mean:.4g} $\\pm$ {c.std:.2g}" if c.values else "--"
            vals.append(f"\\textbf{{{text}}}" if best.get(m) == key else text)
        body.append(" & ".join([*map(esc, key), *vals]) + r" \\")
    cols = "l" * len(varying) + "r" * len(metrics)
    return "\n".join([f"\\begin{{tabular}}{{{cols}}}", r"\toprule", head + r" \\", r"\midrule", *body,
                      r"\bottomrule", r"\end{tabular}", ""])


def plot(path: Path, metric: str, varying: list[str], rows: dict) -> Path:
    """The metric against latent_dim, one line per other row key (variant, ...), std as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = varying.index("latent_dim")
    lines: dict[tuple, list[tuple[int, Cell]]] = {}
    for key, cells in rows.items():
        if cells[metric].values:
            lines.setdefault(key[:d] + key[d + 1:], []).append((key[d], cells[metric]))
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    for label, points in lines.items():
        points.sort(key=lambda p: p[0])
        ax.errorbar([p[0] for p in points], [c.mean for _, c in points], yerr=[c.std for _, c in points],
                    marker="o", capsize=3, label=" ".join(map(str, label)))
    ax.set(xlabel="latent_dim", ylabel=metric, xscale="log", title=f"{metric} against latent size")
    ax.set_xticks(sorted({key[d] for key in rows}), labels=[str(v) for v in sorted({key[d] for key in rows})])
    ax.minorticks_off()
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def page(sweep: Path, table_md: str, plots: list[Path], runs: list[tuple[Path, dict]]) -> str:
    """report.html: the table, the plots, the sweep's dashboard commands and each run's grids and latent scatter."""
    import markdown_it  # rich depends on markdown-it-py

    parts = [f"<h1>aelab report: {html.escape(str(sweep))}</h1>", markdown_it.MarkdownIt().enable("table").render(table_md)]
    parts += [f'<img src="{p.name}" alt="{p.stem}">' for p in plots]
    commands = dashboard_commands(sweep)
    if commands:
        parts.append("<h2>Dashboard</h2>" + "".join(f"<p><code>{html.escape(c)}</code></p>" for c in commands))
    parts.append("<h2>Runs</h2>")
    for folder, r in runs:
        grids = sorted(folder.glob("recon_epoch*.png"))
        images = [g for g in (grids[-1:] + [folder / "latent_pca.png", folder / "samples.png"]) if g.is_file()]
        rel = [g.relative_to(sweep) for g in images]
        parts.append(f"<h3>{html.escape(str(folder.relative_to(sweep)))}: {r['state']}</h3><p>"
                     f"{html.escape(' '.join(r.get('overrides', [])))}</p>"
                     + "".join(f'<img src="{p}" style="max-width:45%">' for p in rel))
    style = "<style>body{font-family:sans-serif} table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:4px}</style>"
    return f"<!doctype html><html><head><meta charset='utf-8'>{style}</head><body>{''.join(parts)}</body></html>\n"


def print_table(varying: list[str], rows: dict, metrics: list[str], best: dict, failed: list) -> None:
    from rich.table import Table

    from aelab.tracking.console import make_console

    table = Table(title="mean ± std over seeds; n runs; bold: best")
    for name in [*varying, "n", *metrics]:
        table.add_column(name, justify="left" if name in varying else "right")
    for key, cells in rows.items():
        texts = [f"{c.mean:.4g} ± {c.std:.2g}" if c.values else "–" for c in (cells[m] for m in metrics)]
        marked = [f"[bold]{t}[/bold]" if best.get(m) == key else t for m, t in zip(metrics, texts)]
        table.add_row(*map(str, key), str(max((c.n for c in cells.values()), default=0)), *marked)
    console = make_console()
    console.print(table)
    for folder, r in failed:
        console.print(f"[red]not averaged in[/red]: {folder} ({r['state']}) {r.get('error', '')}", soft_wrap=True)


def default_metrics(runs: list[tuple[Path, dict]], reference: dict | None = None) -> list[str]:
    """Every test metric that a completed run ranks (declares higher or lower better), in the records' order (the
    model's own, then the eval suite's), but the training objective and its terms (recorded for train/ too, and
    not comparable between variants); then the metrics a paper sweep's reference compares, ranked or not."""
    done = [r for _, r in runs if r["state"] == "completed"]
    fitted = {m.partition("/")[2] for r in done for m in r.get("metrics", {}) if m.startswith("train/")}
    ranked = [m for r in done for m, d in (r.get("higher_is_better") or {}).items() if d is not None]
    shown = [m for m in ranked if m.startswith("test/") and m.partition("/")[2] not in fitted]
    return list(dict.fromkeys([*shown, *paper.metrics(reference)]))


def report(sweep: Path, metrics: list[str] | None = None) -> dict[str, Path]:
    """Write every report file into the sweep folder; return their paths."""
    runs = load_runs(sweep)
    reference = paper.load_reference(runs)
    metrics = metrics or default_metrics(runs, reference)
    direction = directions(runs)
    wanted = list(dict.fromkeys([*metrics, *paper.metrics(reference)]))  # the comparison needs them, shown or not
    varying, rows, constant = group(runs, wanted)
    if reference and reference.get("aggregate"):
        rows = sort_rows(paper.add_aggregate(varying, rows, **reference["aggregate"]))
    best = best_rows(rows, metrics, direction)
    failed = [(folder, r) for folder, r in runs if r["state"] != "completed"]
    table_md = markdown(varying, rows, metrics, best, failed, direction) + study_lines(sweep)
    out = {ext: sweep / f"report.{ext}" for ext in ("md", "csv", "tex", "html")}
    tex = latex(varying, rows, metrics, best, direction)
    if reference:
        lines, unmatched = paper.compare(reference, varying, rows, constant, direction)
        facts = paper.protocol_facts(sweep, runs)
        claims = paper.check_claims(reference, varying, rows, constant)
        table_md += "\n" + paper.markdown(reference, lines, unmatched, facts, claims)
        out["comparison"] = sweep / "comparison.csv"
        paper.write_csv(out["comparison"], lines)
        tex += "\n" + paper.latex(lines)
        paper.print_comparison(reference, lines, unmatched, claims)
        out["paper"] = sweep / "paper.json"
        paper.write_summary(out["paper"], reference, facts, claims)
    out["md"].write_text(table_md)
    write_csv(out["csv"], varying, rows, metrics)
    out["tex"].write_text(tex)
    plots = [plot(sweep / f"plot_{m.replace('/', '_')}.png", m, varying, rows) for m in metrics if rows]
    out["html"].write_text(page(sweep, table_md, plots, runs))
    print_table(varying, rows, metrics, best, failed)
    for line in study_lines(sweep).strip().splitlines():
        print(line)
    return out


def study_lines(sweep: Path) -> str:
    """An Optuna sweep's trials (`<sweep>/optuna.json`, written by the sweeper), its best trial marked; "" otherwise."""
    path = sweep / "optuna.json"
    if not path.is_file():
        return ""
    study = json.loads(path.read_text())
    lines = ["", f"Optuna study `{study['study']}` ({study['direction']} {study['metric']}): "
             f"{len(study['trials'])} trials, best trial {study['best_trial']}", "",
             "| trial | run folder | state | value | parameters |", "|---|---|---|---|---|"]
    for t in study["trials"]:
        mark = "**best** " if t["number"] == study["best_trial"] else ""
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items())
        value = f"{t['value']:.4g}" if t["value"] is not None else ""
        lines.append(f"| {mark}{t['number']} | `{t['folder']}` | {t['state']} | {value} | {params} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="aelab-report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="a sweep folder (outputs/sweeps/...) or any folder of run folders")
    parser.add_argument("--metrics", nargs="+", default=None,
                        help="result.json metric keys (default: every test metric a run ranks, but the training "
                             "objective's terms, then a paper sweep's compared metrics)")
    parser.add_argument("--publish", type=Path, default=None, metavar="DOCS_DIR",
                        help="copy a paper sweep's report files into DOCS_DIR/<name>/ and re-render DOCS_DIR.md")
    args = parser.parse_args(argv)
    if not args.sweep.is_dir():
        sys.exit(f"error: {args.sweep} is not a folder")
    for path in report(args.sweep, args.metrics).values():
        print(f"wrote {path}")
    if args.publish is not None:
        print(f"wrote {paper.publish(args.sweep, args.publish)}")
