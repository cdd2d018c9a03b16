"""`python -m aelab <command> [overrides]` runs the console script `aelab-<command>` (train, eval, apply, ...)."""

from __future__ import annotations

import os
import sys
from importlib.metadata import entry_points


def commands() -> dict[str, object]:
    """aelab's console scripts by command name: `aelab-train` -> train."""
    return {ep.name.removeprefix("aelab-"): ep for ep in entry_points(group="console_scripts")
            if ep.name.startswith("aelab-") and ep.value.startswith("aelab.")}


def main() -> None:
    """Lightning starts DDP ranks > 0 as `python -m aelab <overrides>` (the command already taken off sys.argv,
    which Hydra parses): they find the command in AELAB_COMMAND, set by the first process."""
    known = commands()
    if len(sys.argv) > 1 and sys.argv[1] in known:
        command = sys.argv.pop(1)
    elif os.environ.get("AELAB_COMMAND") in known and len(sys.argv) > 1:
        command = os.environ["AELAB_COMMAND"]
    else:
        given = f"unknown command {sys.argv[1]!r}; " if len(sys.argv) > 1 and sys.argv[1] not in ("-h", "--help") else ""
        sys.exit(f"{'error: ' if given else ''}{given}usage: python -m aelab {{{','.join(sorted(known))}}} [overrides]")
    os.environ["AELAB_COMMAND"] = command
    sys.argv[0] = f"aelab-{command}"
    known[command].load()()


if __name__ == "__main__":
    main()
