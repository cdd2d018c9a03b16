"""W&B set-up: online with credentials, otherwise offline into the run folder, never waiting on the network."""

from __future__ import annotations

import hashlib
import logging
import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

from aelab.runtime import is_multirun, job_overrides, sweep_name

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


def wandb_mode() -> str:
    """'offline' when asked for (WANDB_MODE=offline|dryrun) or when there are no credentials; else 'online'."""
    if os.environ.get("WANDB_MODE", "").lower() in {"offline", "dryrun", "disabled"}:
        return "offline" if os.environ["WANDB_MODE"].lower() != "disabled" else "disabled"
    return "online" if has_credentials() else "offline"


SUMMARIES = {"val/loss": "min", "val/mse": "min", "val/psnr": "max", "val/ssim": "max", "val/elbo": "max"}


def run_id(save_dir: str) -> str:
    """A W&B run id fixed by the run folder, so a resumed job continues its own run instead of adding one."""
    return hashlib.sha1(str(Path(save_dir).resolve()).encode()).hexdigest()[:16]


def wandb_logger(save_dir: str, project: str, name: str | None = None, group: str | None = None, **kwargs):
    """Lightning's WandbLogger writing into `<save_dir>/wandb`, offline unless credentials are available.

    In a sweep the group defaults to the sweep folder's name and the run name to the job's overrides.
    """
    from pytorch_lightning.loggers import WandbLogger

    mode = wandb_mode()
    if mode == "offline" and not os.environ.get("WANDB_MODE"):
        log.info("W&B: no credentials found, logging offline (upload later with `wandb sync`)")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    overrides = job_overrides()
    if is_multirun():
        group = group or sweep_name()
        name = ",".join(o for o in overrides if not o.startswith("experiment=")) or name
    logger = WandbLogger(save_dir=save_dir, project=project, name=name, group=group, offline=mode == "offline",
                         mode=mode, id=run_id(save_dir), resume="allow", **kwargs)
    for key, summary in SUMMARIES.items():
        logger.experiment.define_metric(key, summary=summary)
    return logger


def run_dir(logger) -> Path | None:
    """The local folder of a WandbLogger's run (…/wandb/offline-run-*), or None for other loggers."""
    from pytorch_lightning.loggers import WandbLogger

    if not isinstance(logger, WandbLogger) or logger._experiment is None:
        return None
    return Path(logger.experiment.dir).parent
