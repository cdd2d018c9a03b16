"""The README and the documentation pages: every code block marked runnable runs as written, and the README stays a
front page whose links resolve.

A runnable block is a ```bash block right after the HTML comment `<!-- runnable: ARGS -->`: each of its command lines
is run with the short settings ARGS appended (e.g. `trainer.max_epochs=1`, so the test is quick), in a fresh folder.
The pages' other blocks show commands that need data, a cluster or minutes; they are not run here."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from helpers import ROOT, read_result, run_cli

RUNNABLE = re.compile(r"<!-- runnable:(?P<args>.*?)-->[ \t]*\n```bash\n(?P<body>.*?)\n```", re.S)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
VENV_BIN = ".venv/bin/"


def command_lines(body: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments and blank lines left out."""
    joined = re.sub(r"\\\n\s*", " ", body)
    lines = (re.sub(r"(^|\s)#.*$", "", line).strip() for line in joined.splitlines())
    return [line for line in lines if line]


def runnable_commands() -> list[tuple[str, str, tuple[str, ...]]]:
    """(page, command line, extra settings) of every command of every marked block, each command once."""
    seen: dict[tuple[str, tuple[str, ...]], str] = {}
    for page in PAGES:
        for block in RUNNABLE.finditer(page.read_text()):
            args = tuple(shlex.split(block["args"]))
            for line in command_lines(block["body"]):
                seen.setdefault((line, args), str(page.relative_to(ROOT)))
    return [(page, line, args) for (line, args), page in seen.items()]


COMMANDS = runnable_commands()


def test_runnable_blocks_are_aelab_commands_and_include_the_first_run() -> None:
    assert COMMANDS, "no block is marked <!-- runnable: ... -->"
    for page, line, _ in COMMANDS:
        assert line.startswith(VENV_BIN + "aelab-"), f"{page}: a runnable block runs aelab's console scripts only: {line}"
    readme = [line for page, line, _ in COMMANDS if page == "README.md"]
    assert any(line.startswith(VENV_BIN + "aelab-train ") for line in readme), "the README's first run is not marked runnable"


@pytest.mark.slow
@pytest.mark.parametrize(("page", "line", "args"), COMMANDS, ids=[f"{p}: {c} {' '.join(a)}".strip() for p, c, a in COMMANDS])
def test_runnable_block_runs(page: str, line: str, args: tuple[str, ...], tmp_path: Path) -> None:
    command, *argv = shlex.split(line)
    out = run_cli(command.removeprefix(VENV_BIN), [*argv, *args], cwd=tmp_path)
    assert out.returncode == 0, f"{page}: {line} {' '.join(args)}\n{(out.stdout + out.stderr)[-3000:]}"
    if command.endswith("aelab-train") and not {"--help", "--cfg"} & set(argv):  # a training run: its record
        runs = [p.parent for p in tmp_path.glob("outputs/runs/*/*/result.json")]
        assert len(runs) == 1 and read_result(runs[0])["state"] == "completed", runs


def test_readme_is_a_front_page() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 250
    for command in ("make setup", "make test", "make sweep", "make train"):
        assert command in text, command
    for word in (r"\bissue[ -]?\d", r"\bengineer", r"\bfirst attempt", r"\bsession\b", r"\.\./"):
        assert not re.search(word, text, re.I), word


def test_readme_links_resolve() -> None:
    text = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        assert (ROOT / target.split("#")[0]).exists(), target
