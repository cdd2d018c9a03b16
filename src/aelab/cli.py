"""Console entry points `aelab-train`, `aelab-eval`, `aelab-check`, `aelab-apply`: instant `--help`, one-line errors, then Hydra.

`--help` is answered from a scan of conf/ without importing Hydra, torch or Lightning. Group choices on the
command line (`model=vea`) are checked against conf/ before composing, so a typo costs a fraction of a second
and names the choices. A researcher's own config folders count too: those named by `hydra.searchpath=[file://...]`
and `--config-dir` on the command line, which Hydra searches after (and in addition to) aelab's conf/. Errors that Hydra would print as a stack trace (an output folder that cannot be written,
a malformed override) become one line and exit code 1; `HYDRA_FULL_ERROR=1` shows the full traceback instead.
"""

from __future__ import annotations

import atexit
import difflib
import gc
import os
import re
import sys
from pathlib import Path
from typing import Callable

from aelab import CONF_DIR

CONF = Path(CONF_DIR)
SKIP = ("hydra",)  # groups supplied by Hydra and its plugins (hydra/launcher=joblib, ...), not by conf/
EXAMPLES = {
    "train": ["aelab-train model=vae data=fashion_mnist model.latent_dim=32",
              "aelab-train task=denoise eval=[restoration,probe]",
              "aelab-train -m model=ae,vae model.latent_dim=8,32 hydra/launcher=joblib",
              "aelab-train experiment=compare_fmnist -m"],
    "eval": ["aelab-eval ckpt_path=outputs/runs/<date>/<run>/checkpoints/best.ckpt eval=full"],
    "check": ["aelab-check model=beta_vae", "aelab-check hydra.searchpath=[file://$PWD/conf] model=my_variant"],
    "apply": ["aelab-apply ckpt_path=<run>/checkpoints/best.ckpt input=my_images/ output=restored/",
              "aelab-apply ckpt_path=<run>/checkpoints/best.ckpt input=new_rows.csv output=scores/ mode=score",
              "aelab-apply ckpt_path=<run>/checkpoints/best.ckpt output=exported/ mode=export"],
}
CONFIG = {"train": "train", "eval": "eval", "check": "train", "apply": "apply"}  # the entry config each command composes
HYDRA_PLUGINS: dict[str, str] = {}  # Hydra plugin configs that an aelab extra installs (aelab ships its own sweeper config)


def search_path(args: list[str]) -> list[Path]:
    """aelab's conf/ and the user's config folders named on the command line (`file://` entries of
    `hydra.searchpath=[...]`, and `--config-dir`/`-cd`); `pkg://` entries are left to Hydra."""
    dirs = [CONF]
    for i, arg in enumerate(args):
        if arg.startswith("hydra.searchpath="):
            entries = [e.strip().strip("'\"") for e in arg.split("=", 1)[1].strip("[]").split(",")]
            dirs += [Path(e[len("file://"):]) for e in entries if e.startswith("file://")]
        elif arg.startswith("--config-dir="):
            dirs.append(Path(arg.split("=", 1)[1]))
        elif arg in ("--config-dir", "-cd") and i + 1 < len(args):
            dirs.append(Path(args[i + 1]))
    return [d.expanduser().resolve() for d in dirs]


def groups(dirs: list[Path] | None = None) -> dict[str, list[str]]:
    """Every config group in the config folders (e.g. `model/arch`) with its options (YAML file names)."""
    found: dict[str, list[str]] = {}
    for conf in dirs or [CONF]:
        for yaml in sorted(conf.rglob("*.yaml")):
            group = yaml.parent.relative_to(conf).as_posix()
            if group != "." and not group.startswith(SKIP) and yaml.stem not in found.get(group, []):
                found.setdefault(group, []).append(yaml.stem)
    return {group: sorted(options) for group, options in sorted(found.items())}


def entry_config(entry: str) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The groups an entry config's defaults list names (`data`, `model`, ...) and its own top-level settings as
    (key, default, comment), read from the YAML text (no YAML import: --help stays instant)."""
    lines = (CONF / f"{CONFIG[entry]}.yaml").read_text().splitlines()
    start = lines.index("defaults:") + 1
    end = next((i for i in range(start, len(lines)) if lines[i] and not lines[i][0].isspace()), len(lines))
    named = [re.match(r"\s*-\s*(?:optional\s+|override\s+)?([\w/]+)\s*:", line) for line in lines[start:end]]
    settings = [m.groups() for line in lines[end:]
                if (m := re.match(r"([a-z_]\w*):\s*([^#]*?)\s*(?:#\s*(.*))?$", line)) and m[1] not in ("hydra", "task_name")]
    return [m[1] for m in named if m and m[1] != "hydra"], [(key, value, comment or "") for key, value, comment in settings]


def help_text(entry: str, dirs: list[Path] | None = None) -> str:
    """The command's settings, the config groups its entry config composes (and their options), examples."""
    names, settings = entry_config(entry)
    lines = [f"aelab-{entry}: compose conf/{CONFIG[entry]}.yaml with overrides (Hydra) and run it.",
             f"usage: aelab-{entry} [group=option ...] [key=value ...] [-m for a sweep]", "", "settings (key=value):"]
    lines += [f"  {f'{key}={value}':<22} {comment}".rstrip() for key, value, comment in settings]
    lines += ["", "config groups:"]
    ours = {group.split("/")[0] for group in groups()}  # a group only the user's folders have: listed for every command
    lines += [f"  {group:<22} {', '.join(options)}" for group, options in groups(dirs).items()
              if group.split("/")[0] in names or group.split("/")[0] not in ours]
    if dirs and len(dirs) > 1:
        lines += ["", "config folders: " + ", ".join(map(str, dirs))]
    lines += ["", "examples:", *[f"  {e}" for e in EXAMPLES[entry]], "",
              "  --cfg job      print the composed config      --hydra-help   Hydra's own options",
              "  HYDRA_FULL_ERROR=1 shows full tracebacks instead of one-line errors"]
    return "\n".join(lines)


def choices(value: str) -> list[str]:
    """The options an override value names: `a`, `a,b` (a sweep) or `[a,b]` (several configs of one group)."""
    value = value.strip()
    if value.startswith(("choice(", "range(", "glob(", "interval(", "tag(")):
        return []  # sweep functions: left to Hydra
    return [v.strip() for v in value.strip("[]").split(",") if v.strip() and v.strip() != "null"]


def is_option(group: str, option: str, dirs: list[Path]) -> bool:
    """True when <config folder>/<group>/<option>.yaml exists; options may sit in sub-folders (`experiment=paper/x`)."""
    return any((conf / group / f"{option}.yaml").is_file() for conf in dirs)


def check_choices(args: list[str]) -> str | None:
    """An error line for the first `group=option` naming an option that no config folder has, else None."""
    dirs = search_path(args)
    known = groups(dirs)
    for arg in args:
        if "=" not in arg or arg.startswith("-"):
            continue
        key, value = arg.split("=", 1)
        group = key.lstrip("+~")
        if group not in known:
            continue
        unknown = [v for v in choices(value) if not is_option(group, v, dirs)]
        if unknown:
            close = difflib.get_close_matches(unknown[0], known[group], n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            return f"unknown {group} {unknown[0]!r}{hint}; choose one of: {', '.join(known[group])}"
    return None


def missing_arguments(entry: str, args: list[str]) -> list[str]:
    """One line per required setting (`???` in the entry config) that the command line does not give."""
    given = {arg.split("=", 1)[0].lstrip("+~") for arg in args if "=" in arg}
    if any(arg in ("--cfg", "-c", "--info", "-i", "--resolve") for arg in args):
        return []  # printing the config needs no values
    return [f"aelab-{entry} needs {key}=<value>" + (f": {comment}" if comment else "")
            for key, value, comment in entry_config(entry)[1] if value == "???" and key not in given]


def did_you_mean(entry: str, args: list[str], key: str) -> str:
    """' (did you mean x?)' for an override key that names nothing, from the keys the config really has there."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()  # the failed launch left Hydra initialised
    parent, _, name = key.lstrip("+~").rpartition(".")
    others = [a for a in args if not a.startswith("-") and "=" in a and a.split("=", 1)[0].lstrip("+~") != key]
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(config_name=CONFIG[entry], overrides=others)
        node = OmegaConf.select(cfg, parent) if parent else cfg
        real = [str(k) for k in node.keys()] if hasattr(node, "keys") else []
    except Exception:  # the other overrides do not compose either: no suggestion
        real = []
    if not parent:
        real += list(groups(search_path(args)))
    close = difflib.get_close_matches(name if parent else key, sorted(set(real)), n=3, cutoff=0.6)
    return f" (did you mean {' or '.join((parent + '.' if parent else '') + c for c in close)}?)" if close else ""


def override_error(entry: str, args: list[str], message: str) -> str | None:
    """Hydra's "Could not override 'x'" (with its advice to append `+x`) as aelab's line with the real choices."""
    match = re.match(r"Could not override '([^']+)'", message)
    if not match:
        return None
    key = match[1]
    what = "setting" if "." in key else "config group or setting"
    return f"unknown {what} '{key}'{did_you_mean(entry, args, key)}; aelab-{entry} --help lists them"


def extra_error(message: str) -> str | None:
    """Hydra's error for what an extra installs as the extra's one line: a plugin's config it cannot find
    (`hydra/sweeper=optuna` without aelab[optuna]) or a `_target_` in a module that is not installed."""
    from aelab.core.extras import EXTRA_OF
    from aelab.core.extras import message as extra_line

    plugin = re.search(r"Could not find '(hydra/\w+/\w+)'", message)
    if plugin and plugin[1] in HYDRA_PLUGINS:
        group, option = plugin[1].rsplit("/", 1)
        return extra_line(HYDRA_PLUGINS[plugin[1]], f"{group}={option}")
    module = re.search(r"(?:Error locating target|No module named) '(\w+)", message)
    if module is None or module[1] not in EXTRA_OF:
        return None
    key = re.search(r"full_key: ([\w.]+)", message)
    return f"{extra_line(EXTRA_OF[module[1]], key[1] if key else 'this config')} ({module[1]} is not installed)"


def run(entry: str, load_main: Callable[[], Callable[[], None]]) -> None:
    """Answer --help, check group choices, then import and run Hydra's main with its errors reported in one line."""
    args = sys.argv[1:]
    if "--help" in args or "-h" in args:
        print(help_text(entry, search_path(args)))
        return
    error = check_choices(args)
    if error:
        sys.exit(f"error: {error}")
    missing = missing_arguments(entry, args)
    if missing:
        sys.exit("\n".join(f"error: {line}" for line in missing))
    # registered first, so it runs after every other exit handler: the interpreter's last garbage collection then
    # skips the million objects of torch and Lightning (1.1-1.3 s here); each is still released by its owner
    atexit.register(gc.freeze)
    sys.path.insert(0, os.getcwd())  # the researcher's own parts (`_target_: mymodule.Class`) import from here
    full = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["AELAB_FULL_ERROR"] = "1" if full else "0"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises, so that the lines below see the real exception
    try:
        load_main()()
    except Exception as err:  # errors before or around the job: composition, the output folder
        if full:
            raise
        message = " ".join(str(err).split())  # Hydra's multi-line messages on one line
        unknown = override_error(entry, args, message) or extra_error(message)
        if unknown:
            message = unknown
        elif isinstance(err, OSError) and err.filename:
            message = f"cannot write {err.filename}: {err.strerror} (point hydra.run.dir / hydra.sweep.dir at a writable folder)"
        elif not is_expected(err):
            message = f"{type(err).__name__}: {message} (HYDRA_FULL_ERROR=1 shows the traceback)"
        sys.exit(f"error: {message}")


def is_expected(err: Exception) -> bool:
    """Errors whose message says it all: aelab's own, Hydra's config errors, unwritable folders."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from aelab.core.errors import AelabError

    return isinstance(err, (AelabError, HydraException, OmegaConfBaseException, PermissionError))


def train_main() -> Callable[[], None]:
    from aelab.commands.train import main

    return main


def evaluate_main() -> Callable[[], None]:
    from aelab.commands.evaluate import main

    return main


def check_main() -> Callable[[], None]:
    from aelab.commands.check import main

    return main


def apply_main() -> Callable[[], None]:
    from aelab.commands.apply import main

    return main


def apply() -> None:
    run("apply", apply_main)


def train() -> None:
    run("train", train_main)


def check() -> None:
    run("check", check_main)


def evaluate() -> None:
    run("eval", evaluate_main)
