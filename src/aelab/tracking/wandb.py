"""W&B set-up: online with credentials, otherwise offline into the run folder, never waiting on the network.

In a sweep, every job's local W&B run is also linked into the sweep-level folder `<sweep>/wandb/` as soon as it
starts, so `wandb leet <sweep>/wandb` shows the whole sweep (running, finished and failed jobs) in one dashboard.
"""

from __future__ import annotations

import hashlib
import logging
import netrc
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from aelab.core.files import atomic_write
from aelab.tracking.runtime import is_global_zero, is_multirun, job_overrides, sweep_dir, sweep_name

log = logging.getLogger(__name__)


def has_credentials() -> bool:
    """True when WANDB_API_KEY is set or ~/.netrc holds a key for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def server_reachable(timeout: float = 5.0) -> bool:
    """True when a TCP connection to the W&B server (WANDB_BASE_URL) opens within `timeout` seconds."""
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "api.wandb.ai", port), timeout=timeout):
            return True
    except OSError:
        return False


def wandb_mode() -> str:
    """'offline' when asked for (WANDB_MODE=offline|dryrun), without credentials or when the server cannot be
    reached; else 'online'."""
    if os.environ.get("WANDB_MODE", "").lower() in {"offline", "dryrun", "disabled"}:
        return "offline" if os.environ["WANDB_MODE"].lower() != "disabled" else "disabled"
    if not has_credentials():
        log.info("W&B: no credentials found, logging offline (upload later with `wandb sync`)")
        return "offline"
    if not server_reachable():
        log.warning("W&B: %s cannot be reached, logging offline (upload later with `wandb sync`)",
                    os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
        return "offline"
    return "online"


SUMMARIES = {"val/loss": "min", "val/mse": "min", "val/psnr": "max", "val/ssim": "max", "val/elbo": "max"}


def run_id(save_dir: str) -> str:
    """A W&B run id fixed by the run folder, so a resumed job continues its own run instead of adding one."""
    return hashlib.sha1(str(Path(save_dir).resolve()).encode()).hexdigest()[:16]


def wandb_logger(save_dir: str, project: str, name: str | None = None, group: str | None = None, **kwargs):
    """Lightning's WandbLogger writing into `<save_dir>/wandb`, offline unless credentials are available.

    In a sweep the group defaults to the sweep folder's name and the run name to the job's overrides.
    """
    import wandb
    from pytorch_lightning.loggers import WandbLogger

    mode = wandb_mode()
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    overrides = job_overrides()
    if is_multirun():
        group = group or sweep_name()
        name = ",".join(o for o in overrides if not o.startswith("experiment=")) or name

    def make(mode: str) -> WandbLogger:
        return WandbLogger(save_dir=save_dir, project=project, name=name, group=group, offline=mode == "offline",
                           mode=mode, id=run_id(save_dir), resume="allow", settings=wandb.Settings(init_timeout=20), **kwargs)

    logger = make(mode)
    try:
        _ = logger.experiment  # start the run now: a server that accepts connections but does not answer times out here
    except Exception as err:  # wandb.errors.CommError and friends
        if mode != "online":
            raise
        log.warning("W&B: starting the run online failed (%s), logging offline (upload later with `wandb sync`)", err)
        logger = make("offline")
    for key, summary in SUMMARIES.items():
        logger.experiment.define_metric(key, summary=summary)
    if is_multirun() and is_global_zero():
        link_into_sweep(run_dir(logger), sweep_dir() / "wandb")
    return logger


def link_into_sweep(run_folder: Path, shared: Path) -> Path:
    """`shared/<run folder name>` -> the job's run folder (a relative link), replacing the job's earlier link: a
    resumed job writes a new local folder for the same run id, and the sweep shows its latest one, once."""
    shared.mkdir(parents=True, exist_ok=True)
    job_wandb = run_folder.parent.resolve()
    for old in shared.glob("*run-*"):
        if old.is_symlink() and (shared / os.readlink(old)).resolve().parent == job_wandb:
            old.unlink()
    link = shared / run_folder.name
    target = os.path.relpath(run_folder.resolve(), shared.resolve())
    return atomic_write(link, lambda tmp: tmp.symlink_to(target))


def run_dir(logger) -> Path | None:
    """The local folder of a WandbLogger's run (…/wandb/offline-run-*), or None for other loggers."""
    from pytorch_lightning.loggers import WandbLogger

    if not isinstance(logger, WandbLogger) or logger._experiment is None:
        return None
    return Path(logger.experiment.dir).parent
