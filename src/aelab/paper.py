"""Published numbers beside ours: the reference of a paper sweep, matched to the report's rows.

A paper experiment (`conf/experiment/paper/<name>.yaml`) selects `reference=<name>` (`conf/reference/<name>.yaml`:
citation, table, metric, protocol, rows), so every run folder of its sweep carries the reference in
`.hydra/config.yaml` and the report needs nothing but the run folders. A reference row names the method, the
value, `match` (the run keys of our rows it is set beside), its own `metric` if not the file's, and `comparable`:
only a comparable row (same data and protocol) gets a difference. A row that matches none of our rows is
listed as such, never dropped. `aggregate: {over: normal_classes, label: mean}` adds, per model, the mean over
that key: per seed the mean over its values, then mean +- std over the seeds that have all of them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml

from aelab.stats import Cell


def load_reference(runs: list[tuple[Path, dict]]) -> dict | None:
    """The `reference` node of the last completed run's composed config (a corrected reference file reaches the
    report with the next run of the sweep), or None."""
    for folder, record in sorted(runs, key=lambda fr: fr[1].get("finished_at") or 0, reverse=True):
        config = folder / ".hydra" / "config.yaml"
        if record["state"] == "completed" and config.is_file():
            return (yaml.safe_load(config.read_text()) or {}).get("reference")
    return None


def add_aggregate(varying: list[str], rows: dict[tuple, dict[str, Cell]], over: str, label: str) -> dict[tuple, dict[str, Cell]]:
    """The rows plus one row per group of rows that differ only in `over`, with `over` set to `label`."""
    if over not in varying:
        return rows
    i = varying.index(over)
    groups: dict[tuple, list[dict[str, Cell]]] = {}
    for key, cells in rows.items():
        groups.setdefault(key[:i] + key[i + 1:], []).append(cells)
    out = dict(rows)
    for rest, members in groups.items():
        metrics = members[0].keys()
        out[rest[:i] + (label,) + rest[i:]] = {m: seed_means([c[m] for c in members]) for m in metrics}
    return out


def seed_means(cells: list[Cell]) -> Cell:
    """Per seed, the mean over the cells (only seeds present in every cell); one value per such seed."""
    shared = set.intersection(*(set(c.seeds) for c in cells)) if cells else set()
    out = Cell()
    for seed in sorted(shared):
        out.add(sum(c.values[c.seeds.index(seed)] for c in cells) / len(cells), seed)
    return out


def matches(key: dict[str, Any], match: dict[str, Any]) -> bool:
    """True when every key of `match` equals our row's (compared as text: 32 == "32")."""
    return all(str(key.get(k)) == str(v) for k, v in match.items())


def metrics(reference: dict | None) -> list[str]:
    """Every metric a reference compares (the file's and the rows' own)."""
    if not reference:
        return []
    return list(dict.fromkeys([reference["metric"], *(r["metric"] for r in reference.get("rows", []) if "metric" in r)]))


def compare(reference: dict, varying: list[str], rows: dict[tuple, dict[str, Cell]],
            constant: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """One line per (reference row, matching row of ours), and the reference rows that match none."""
    lines, unmatched = [], []
    for ref in reference.get("rows", []):
        metric = ref.get("metric", reference["metric"])
        found = [key for key in rows if matches({**constant, **dict(zip(varying, key))}, ref.get("match", {}))]
        if not found:
            unmatched.append(ref)
        for key in found:
            cell = rows[key][metric]
            comparable = bool(ref.get("comparable", False))
            diff = cell.mean - float(ref["value"]) if comparable and cell.values else None
            lines.append({"method": ref["method"], "row": " ".join(f"{k}={v}" for k, v in zip(varying, key)),
                          "metric": metric, "ours": cell.text(), "ours_mean": cell.mean if cell.values else None,
                          "ours_std": cell.std if cell.values else None, "n": cell.n, "paper": float(ref["value"]),
                          "difference": diff, "comparable": comparable, "note": ref.get("note", "")})
    return lines, unmatched


def protocol_facts(sweep: Path, runs: list[tuple[Path, dict]]) -> dict[str, Any]:
    """What the runs did: the command, epochs per model, seeds, jobs, wall time (first start to last end)."""
    done = [(f, r) for f, r in runs if r["state"] == "completed"]
    epochs: dict[str, set] = {}
    for folder, record in done:
        path = folder / ".hydra" / "config.yaml"
        config = yaml.safe_load(path.read_text()) if path.is_file() else {}
        trained = "baseline" not in str(config.get("model", {}).get("_target_", "aelab.baselines"))
        epochs.setdefault(record["run"].get("model", "?"), set()).add(config.get("trainer", {}).get("max_epochs") if trained else "fit")
    starts = [r["started_at"] for _, r in done if r.get("started_at")]
    ends = [r["finished_at"] for _, r in done if r.get("finished_at")]
    return {"command": sweep_command(sweep), "jobs": len(runs), "completed": len(done),
            "seeds": sorted({r.get("seed") for _, r in done}),
            "epochs": {m: sorted(map(str, e)) for m, e in sorted(epochs.items())},
            "wall_time_s": round(max(ends) - min(starts), 1) if starts and ends else None,
            "job_time_s": round(sum(r.get("wall_time_s") or 0 for _, r in done), 1)}


def sweep_command(sweep: Path) -> str | None:
    """`aelab-train -m <the sweep's command-line overrides>` from multirun.yaml, when the folder has one."""
    path = sweep / "multirun.yaml"
    if not path.is_file():
        return None
    task = (yaml.safe_load(path.read_text()) or {}).get("hydra", {}).get("overrides", {}).get("task", [])
    return " ".join(["aelab-train -m", *task])


def markdown(reference: dict, lines: list[dict], unmatched: list[dict], facts: dict[str, Any]) -> str:
    """The comparison section of report.md: citation, ours | paper | difference, what differs, unmatched rows."""
    out = [f"## Against the published numbers: {reference.get('title', reference['name'])}", "",
           f"{reference['citation']}; {reference.get('table', '')}.", "",
           "| published (method) | our row | metric | ours (mean ± std, n) | paper | difference |", "|---|---|---|---|---|---|"]
    for line in lines:
        diff = f"{line['difference']:+.4f}" if line["difference"] is not None else "context only"
        out.append(f"| {line['method']} | {line['row']} | {line['metric']} | {line['ours']} | {line['paper']:.4g} | {diff} |")
    notes = [f"- {line['method']} ({line['row']}): {line['note']}" for line in lines if line["note"]]
    out += ["", "Difference = our mean - the published value, only where the row is comparable (same data and "
            "protocol).", *(["", *dict.fromkeys(notes)] if notes else [])]
    out += ["", f"**Their protocol.** {reference.get('protocol', '')}", "",
            f"**Ours.** {reference.get('differences', '')}", "", "**What ran.** " + facts_text(facts)]
    if unmatched:
        out += ["", "Published rows that match none of our runs:", ""]
        out += [f"- {r['method']} = {r['value']} (match {json.dumps(r.get('match', {}))})" for r in unmatched]
    return "\n".join(out) + "\n"


def facts_text(facts: dict[str, Any]) -> str:
    epochs = "; ".join(f"{m}: {', '.join(e)}" for m, e in facts["epochs"].items())
    wall = f"{facts['wall_time_s'] / 60:.1f} min wall" if facts["wall_time_s"] else "wall time unknown"
    return (f"`{facts['command'] or 'aelab-train -m ...'}`: {facts['completed']} of {facts['jobs']} jobs completed, "
            f"seeds {facts['seeds']}, epochs ({epochs}), {wall} ({facts['job_time_s'] / 60:.1f} job-minutes).")


COLUMNS = ("method", "row", "metric", "ours_mean", "ours_std", "n", "paper", "difference", "comparable", "note")


def write_csv(path: Path, lines: list[dict]) -> None:
    """comparison.csv: one line per (published row, our row)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(lines)


def latex(lines: list[dict]) -> str:
    """The comparison as a booktabs tabular: ours, paper, difference."""
    esc = lambda s: str(s).replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")  # noqa: E731
    body = []
    for line in lines:
        ours = f"{line['ours_mean']:.4g} $\\pm$ {line['ours_std']:.2g}" if line["ours_mean"] is not None else "--"
        diff = f"{line['difference']:+.4f}" if line["difference"] is not None else "context"
        body.append(" & ".join([esc(line["method"]), esc(line["row"]), ours, f"{line['paper']:.4g}", diff]) + r" \\")
    return "\n".join([r"\begin{tabular}{llrrr}", r"\toprule", r"published & ours & ours & paper & $\Delta$ \\", r"\midrule",
                      *body, r"\bottomrule", r"\end{tabular}", ""])


def print_comparison(reference: dict, lines: list[dict], unmatched: list[dict]) -> None:
    """ours | paper | difference on the terminal (rich)."""
    from rich.table import Table

    from aelab.console import make_console

    table = Table(title=f"{reference.get('title', reference['name'])}: ours | paper | difference")
    for name in ("published", "our row", "metric", "ours", "paper", "difference"):
        table.add_column(name, overflow="fold")
    for line in lines:
        diff = f"{line['difference']:+.4f}" if line["difference"] is not None else "context only"
        table.add_row(line["method"], line["row"], line["metric"], line["ours"], f"{line['paper']:.4g}", diff)
    console = make_console()
    console.print(table)
    for ref in unmatched:
        console.print(f"[yellow]published row matches no run[/yellow]: {ref['method']} {json.dumps(ref.get('match', {}))}")


# ---- docs/results.md: the reproduced tables, rendered from the report files that the sweeps wrote ---------------
PUBLISHED = ("report.csv", "comparison.csv", "paper.json")  # what a sweep's report leaves for the docs (notes.md
# beside them is the hand-written reading of the table; publishing leaves it alone)


def write_summary(path: Path, reference: dict, facts: dict[str, Any]) -> None:
    """paper.json: the reference's description (not its rows) and what ran."""
    keep = ("name", "title", "citation", "table", "metric", "protocol", "differences")
    path.write_text(json.dumps({"reference": {k: reference.get(k) for k in keep}, "facts": facts}, indent=2) + "\n")


def publish(sweep: Path, docs_dir: Path) -> Path:
    """Copy a paper sweep's report files into docs_dir/<reference name>/ and re-render docs_dir's page."""
    summary = sweep / "paper.json"
    if not summary.is_file():
        raise SystemExit(f"error: {sweep} has no paper.json: run aelab-report on a sweep of experiment=paper/<name>")
    target = docs_dir / json.loads(summary.read_text())["reference"]["name"]
    target.mkdir(parents=True, exist_ok=True)
    for name in PUBLISHED:
        (target / name).write_bytes((sweep / name).read_bytes())
    page = docs_dir.parent / f"{docs_dir.name}.md"
    page.write_text(render_page(docs_dir))
    return page


def render_page(docs_dir: Path) -> str:
    """docs/results.md from docs/results/<name>/{report.csv, comparison.csv, paper.json}, in name order."""
    out = ["# Reproduced tables", "",
           "Generated by `make results` from the report files in `results/` (written by `aelab-report` from the runs "
           "of each sweep; never edited by hand: `tests/test_paper.py` checks that this page and those files agree). "
           "Every number comes from a real run on a 2-core CPU without a GPU.", ""]
    for folder in sorted(p for p in docs_dir.iterdir() if (p / "paper.json").is_file()):
        out += section(folder)
    return "\n".join(out) + "\n"


def section(folder: Path) -> list[str]:
    summary = json.loads((folder / "paper.json").read_text())
    ref, facts = summary["reference"], summary["facts"]
    out = [f"## {ref['title']}", "", f"Published: {ref['citation']}; {ref['table']}.", "",
           facts_text(facts) + f" The same: `make paper NAME={ref['name']}`.", "",
           f"Their protocol: {ref['protocol']}", "", f"Ours: {ref['differences']}", "", "### Our runs", ""]
    out += csv_table(folder / "report.csv")
    notes = folder / "notes.md"  # written by hand from the tables above: what they say, and likely reasons
    out += ["", "### What the numbers say", "", notes.read_text().strip()] if notes.is_file() else []
    out += ["", "### Ours | paper | difference", ""]
    rows = list(csv.DictReader(open(folder / "comparison.csv")))
    out += ["| published (method) | our row | metric | ours | paper | difference |", "|---|---|---|---|---|---|"]
    for r in rows:
        ours = f"{float(r['ours_mean']):.4g} ± {float(r['ours_std']):.2g} (n={r['n']})" if r["ours_mean"] else "–"
        diff = f"{float(r['difference']):+.4f}" if r["difference"] else "context only"
        out.append(f"| {r['method']} | {r['row']} | {r['metric']} | {ours} | {float(r['paper']):.4g} | {diff} |")
    return out + [""]


def csv_table(path: Path) -> list[str]:
    """report.csv (key columns, then <metric>_mean/_std/_n) as a markdown table of mean ± std (n)."""
    rows = list(csv.DictReader(open(path)))
    if not rows:
        return ["(no completed runs)"]
    names = list(rows[0])
    metrics = [c[: -len("_mean")] for c in names if c.endswith("_mean")]
    keys = [c for c in names if not c.endswith(("_mean", "_std", "_n"))]
    out = ["| " + " | ".join([*keys, *metrics]) + " |", "|" + "---|" * (len(keys) + len(metrics))]
    for r in rows:
        cells = [f"{float(r[m + '_mean']):.4g} ± {float(r[m + '_std']):.2g} ({r[m + '_n']})" if r[m + "_n"] != "0" else "–"
                 for m in metrics]
        out.append("| " + " | ".join([*(r[k] for k in keys), *cells]) + " |")
    return out
