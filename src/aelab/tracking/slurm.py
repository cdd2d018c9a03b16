"""SLURM: the one requeue mechanism is submitit's (hydra_plugins.aelab_plugins.slurm_launcher); Lightning's is off.

Lightning's own SLURM auto-requeue (SIGUSR1, `hpc_ckpt_*.ckpt`) would requeue a second time on a signal submitit
already handles, and resume from a checkpoint aelab's resume does not read: it is turned off here.
"""

from __future__ import annotations

from typing import Any


def lightning_plugins(configured: Any) -> dict[str, Any]:
    """Trainer arguments under SLURM: its cluster environment with Lightning's auto-requeue off (submitit requeues)."""
    from lightning_fabric.plugins.environments import SLURMEnvironment

    if configured is not None or not SLURMEnvironment.detect():
        return {}
    return {"plugins": [SLURMEnvironment(auto_requeue=False)]}
