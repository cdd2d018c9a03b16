"""W&B set-up: online with credentials, otherwise offline into the run folder, never waiting on the network."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

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


def wandb_logger(save_dir: str, **kwargs):
    """Lightning's WandbLogger writing into `<save_dir>/wandb`, offline unless credentials are available."""
    from pytorch_lightning.loggers import WandbLogger

    mode = wandb_mode()
    if mode == "offline" and not os.environ.get("WANDB_MODE"):
        log.info("W&B: no credentials found, logging offline (upload later with `wandb sync`)")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(save_dir=save_dir, offline=mode == "offline", mode=mode, **kwargs)


def run_dir(logger) -> Path | None:
    """The local folder of a WandbLogger's run (…/wandb/offline-run-*), or None for other loggers."""
    from pytorch_lightning.loggers import WandbLogger

    if not isinstance(logger, WandbLogger) or logger._experiment is None:
        return None
    return Path(logger.experiment.dir).parent
