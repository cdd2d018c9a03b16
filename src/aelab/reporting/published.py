"""Published numbers beside ours: the reference of a paper sweep, matched to the report's rows.

A paper experiment (`conf/experiment/paper/<name>.yaml`) selects `reference=<name>` (`conf/reference/<name>.yaml`:
citation, table, metric, protocol, rows), so every run folder of its sweep carries the reference in
`.hydra/config.yaml` and the report needs nothing but the run folders. A reference row names the method, the
value, `match` (the run keys of our rows it is set beside), its own `metric` if not the file's, and `comparable`:
only a comparable row (same data and protocol) gets a difference. A row that matches none of our rows is
listed as such, never dropped. `aggregate: {over: normal_classes, label: mean}` adds, per model, the mean over
that key: per seed the mean over its values, then mean +- std over the seeds that have all of them.
Where values are not comparable across data or metrics (e.g. FID against our classifier-feature distance),
`compare: rank` sets ranks beside each other instead: our rank among the matched rows against the paper's.
`claims` are the paper's statements about pairs of rows (`lower` or `higher` row `than` another row, on a metric),
checked on our means: holds, fails, or not run; "apart" when the seed ranges do not overlap either.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml

from aelab.reporting.cell import Cell


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
    """Every metric a reference compares (the file's, the rows' own and its claims')."""
    if not reference:
        return []
    rows = [r["metric"] for r in reference.get("rows", []) if "metric" in r]
    return list(dict.fromkeys([reference["metric"], *rows, *(c["metric"] for c in reference.get("claims", []))]))


def compare(reference: dict, varying: list[str], rows: dict[tuple, dict[str, Cell]], constant: dict[str, Any],
            direction: dict[str, bool | None]) -> tuple[list[dict], list[dict]]:
    """One line per (reference row, matching row of ours), and the reference rows that match none; `compare: rank`
    ranks by the direction our runs declared for each metric."""
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
                          "difference": diff, "comparable": comparable, "note": ref.get("note", ""),
                          "ours_rank": None, "paper_rank": None})
    if reference.get("compare") == "rank":
        rank(lines, direction)
    return lines, unmatched


def rank(lines: list[dict], direction: dict[str, bool | None]) -> None:
    """Set `ours_rank` and `paper_rank` (1 = best) among the lines that have our value, per metric that declares
    a direction (an unranked metric gets no ranks)."""
    for metric in {line["metric"] for line in lines if direction.get(line["metric"]) is not None}:
        ranked = [line for line in lines if line["metric"] == metric and line["ours_mean"] is not None]
        for value, field in (("ours_mean", "ours_rank"), ("paper", "paper_rank")):
            for i, line in enumerate(sorted(ranked, key=lambda ln: ln[value], reverse=bool(direction[metric]))):
                line[field] = i + 1


def check_claims(reference: dict, varying: list[str], rows: dict[tuple, dict[str, Cell]],
                 constant: dict[str, Any]) -> list[dict]:
    """Each claim of the reference checked on our rows: verdict `holds`, `fails` or `not run` (no single row on
    a side, or no value), with both means; `apart` when every seed of the winner beats every seed of the other."""
    out = []
    for claim in reference.get("claims", []):
        side = "lower" if "lower" in claim else "higher"
        cells = []
        for match in (claim[side], claim["than"]):
            found = [key for key in rows if matches({**constant, **dict(zip(varying, key))}, match)]
            cells.append(rows[found[0]].get(claim["metric"]) if len(found) == 1 else None)
        result = {"claim": claim["claim"], "metric": claim["metric"], "winner": claim[side], "than": claim["than"],
                  "winner_mean": None, "than_mean": None, "verdict": "not run", "apart": False}
        if all(c is not None and c.values for c in cells):
            a, b = cells
            better = (lambda u, v: u < v) if side == "lower" else (lambda u, v: u > v)
            result.update(winner_mean=a.mean, than_mean=b.mean, verdict="holds" if better(a.mean, b.mean) else "fails",
                          apart=better(max(a.values), min(b.values)) if side == "lower" else better(min(a.values), max(b.values)))
        out.append(result)
    return out


def claims_markdown(claims: list[dict]) -> list[str]:
    """The claims as a markdown table: the claim, both means, the verdict."""
    if not claims:
        return []
    out = ["| claim (the paper's) | metric | ours: winner | ours: other | verdict |", "|---|---|---|---|---|"]
    for c in claims:
        means = [f"{v:.4g}" if v is not None else "–" for v in (c["winner_mean"], c["than_mean"])]
        verdict = c["verdict"] + (" (every seed)" if c["apart"] else " (means only)" if c["verdict"] != "not run" else "")
        out.append(f"| {c['claim']} | {c['metric']} | {means[0]} | {means[1]} | {verdict} |")
    return out


def difference_text(line: dict) -> str:
    """The difference cell: signed difference, our rank against the paper's, or context only."""
    if line.get("difference") not in (None, ""):
        return f"{float(line['difference']):+.4f}"
    if line.get("ours_rank") not in (None, ""):
        return f"rank {line['ours_rank']} (paper {line['paper_rank']})"
    return "context only"


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
    task = [t for t in task if not t.lstrip("+").startswith("paths.")]  # where the runs went is not the protocol
    return " ".join(["aelab-train -m", *task])


def markdown(reference: dict, lines: list[dict], unmatched: list[dict], facts: dict[str, Any],
             claims: list[dict] | None = None) -> str:
    """The comparison section of report.md: citation, ours | paper | difference, what differs, unmatched rows."""
    out = [f"## Against the published numbers: {reference.get('title', reference['name'])}", "",
           f"{reference['citation']}; {reference.get('table', '')}.", "",
           "| published (method) | our row | metric | ours (mean ± std, n) | paper | difference |", "|---|---|---|---|---|---|"]
    for line in lines:
        out.append(f"| {line['method']} | {line['row']} | {line['metric']} | {line['ours']} | {line['paper']:.4g} | "
                   f"{difference_text(line)} |")
    notes = [f"- {line['method']} ({line['row']}): {line['note']}" for line in lines if line["note"]]
    out += ["", "Difference = our mean - the published value, only where the row is comparable (same data and "
            "protocol); rank = our rank among these rows against the paper's, where only ranks compare.",
            *(["", *dict.fromkeys(notes)] if notes else [])]
    if claims:
        out += ["", "**The paper's claims on our runs.**", "", *claims_markdown(claims)]
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


COLUMNS = ("method", "row", "metric", "ours_mean", "ours_std", "n", "paper", "difference", "comparable", "note",
           "ours_rank", "paper_rank")


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
        diff = difference_text(line).replace("context only", "context")
        body.append(" & ".join([esc(line["method"]), esc(line["row"]), ours, f"{line['paper']:.4g}", diff]) + r" \\")
    return "\n".join([r"\begin{tabular}{llrrr}", r"\toprule", r"published & ours & ours & paper & $\Delta$ \\", r"\midrule",
                      *body, r"\bottomrule", r"\end{tabular}", ""])


def print_comparison(reference: dict, lines: list[dict], unmatched: list[dict], claims: list[dict] | None = None) -> None:
    """ours | paper | difference on the terminal (rich)."""
    from rich.table import Table

    from aelab.tracking.console import make_console

    table = Table(title=f"{reference.get('title', reference['name'])}: ours | paper | difference")
    for name in ("published", "our row", "metric", "ours", "paper", "difference"):
        table.add_column(name, overflow="fold")
    for line in lines:
        table.add_row(line["method"], line["row"], line["metric"], line["ours"], f"{line['paper']:.4g}", difference_text(line))
    console = make_console()
    console.print(table)
    for c in claims or []:
        colour = {"holds": "green", "fails": "red"}.get(c["verdict"], "yellow")
        console.print(f"[{colour}]{c['verdict']}[/{colour}]{' (every seed)' if c['apart'] else ''}: {c['claim']}")
    for ref in unmatched:
        console.print(f"[yellow]published row matches no run[/yellow]: {ref['method']} {json.dumps(ref.get('match', {}))}")


# ---- docs/results.md: the reproduced tables, rendered from the report files that the sweeps wrote ---------------
PUBLISHED = ("report.csv", "comparison.csv", "paper.json")  # what a sweep's report leaves for the docs (notes.md
# beside them is the hand-written reading of the table; publishing leaves it alone)


def write_summary(path: Path, reference: dict, facts: dict[str, Any], claims: list[dict] | None = None) -> None:
    """paper.json: the reference's description (not its rows), what ran and the claims checked."""
    keep = ("name", "title", "citation", "table", "metric", "protocol", "differences", "figures")
    summary = {"reference": {k: reference.get(k) for k in keep}, "facts": facts, "claims": claims or []}
    path.write_text(json.dumps(summary, indent=2) + "\n")


def publish(sweep: Path, docs_dir: Path) -> Path:
    """Copy a paper sweep's report files into docs_dir/<reference name>/ and re-render docs_dir's page."""
    summary = sweep / "paper.json"
    if not summary.is_file():
        raise SystemExit(f"error: {sweep} has no paper.json: run aelab-report on a sweep of experiment=paper/<name>")
    target = docs_dir / json.loads(summary.read_text())["reference"]["name"]
    target.mkdir(parents=True, exist_ok=True)
    for name in PUBLISHED:
        (target / name).write_bytes((sweep / name).read_bytes())
    for figure in json.loads(summary.read_text())["reference"].get("figures") or []:
        for model, folder in first_seeds(sweep).items():
            if (folder / figure).is_file():
                (target / f"{model}_{figure}").write_bytes((folder / figure).read_bytes())
    page = docs_dir.parent / f"{docs_dir.name}.md"
    page.write_text(render_page(docs_dir))
    return page


def first_seeds(sweep: Path) -> dict[str, Path]:
    """Per model, the folder of its completed run with the lowest seed (the run whose figures are published)."""
    runs = []
    for path in sweep.rglob("result.json"):
        record = json.loads(path.read_text())
        if record.get("state") == "completed":
            runs.append((record.get("seed") or 0, str(path.parent), record.get("run", {}).get("model")))
    out: dict[str, Path] = {}
    for _, folder, model in sorted(runs):
        out.setdefault(model, Path(folder))
    return out


def render_page(docs_dir: Path) -> str:
    """docs/results.md from docs/results/<name>/{report.csv, comparison.csv, paper.json}, in title order."""
    out = ["# Reproduced tables", "",
           "Generated by `make results` from the report files in `results/` (written by `aelab-report` from the runs "
           "of each sweep; never edited by hand: `tests/test_reproduced_tables.py` checks that this page and those files agree). "
           "Every number comes from a real run on a 2-core CPU without a GPU.", ""]
    folders = [p for p in docs_dir.iterdir() if (p / "paper.json").is_file()]
    for folder in sorted(folders, key=lambda p: json.loads((p / "paper.json").read_text())["reference"]["title"]):  # Table 1, 2, ...
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
        out.append(f"| {r['method']} | {r['row']} | {r['metric']} | {ours} | {float(r['paper']):.4g} | {difference_text(r)} |")
    if summary.get("claims"):
        out += ["", "### The paper's claims on our runs", "", *claims_markdown(summary["claims"])]
    for figure in ref.get("figures") or []:  # one per model, from its lowest seed (publish copied them)
        out += ["", f"### {figure} of each model (seed of the lowest number)", ""]
        out += [f"**{p.name.removesuffix('_' + figure)}**\n\n![{p.name}]({folder.parent.name}/{folder.name}/{p.name})\n"
                for p in sorted(folder.glob(f"*_{figure}"))]
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
