"""aelab's SLURM launcher (`hydra/launcher=slurm`): hydra-submitit-launcher's, waiting by `squeue`; requeue.

Requeue is submitit's: SLURM sends SIGUSR2 `signal_delay_s` before the time limit (and a preemption sends it too);
submitit's handler re-submits the same job (`BaseSubmititLauncher.checkpoint`) with `scontrol requeue`, and the job,
started again with the same SLURM_JOB_ID, resumes its run folder from `checkpoints/last.ckpt` (`aelab-train`'s
resume), keeps its run lock (same job id) and its W&B run (id fixed by the folder). `scontrol requeue` by an admin
sends SIGTERM: Lightning stops at the next batch and the job is started again the same way. Lightning's own SLURM
auto-requeue (SIGUSR1, its `hpc_ckpt_*.ckpt`) is turned off (`aelab.tracking.slurm.lightning_plugins`): two
handlers would requeue twice.

The launcher differs from hydra-submitit-launcher's in how it waits: a job is over when it left `squeue` (or wrote
its result), so a job killed on its node (no result file) is recorded `failed` in its result.json and the sweep
goes on; submitit alone asks `sacct`, which a cluster without accounting lacks, and waits for ever.
"""

from __future__ import annotations

import logging
import math
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher

from aelab.tracking.run import read_record, write_json

log = logging.getLogger(__name__)
POLL_S = 2.0  # how often squeue is asked while jobs run


def queued(job_ids: Sequence[str]) -> set[str]:
    """The ids among `job_ids` that SLURM still holds (pending, running, requeued, completing)."""
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(job_ids)], capture_output=True, text=True)
    if out.returncode != 0 and "Invalid job id" not in out.stderr:
        raise RuntimeError(f"squeue failed: {out.stderr.strip()}")
    done = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"}
    return {line.split()[0] for line in out.stdout.splitlines() if line.split()[1] not in done}


class SlurmLauncher(SubmititSlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher (its `launch`, as of 1.2.0) waiting by `squeue` (see the module)."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit
        from hydra.core.singleton import Singleton
        from hydra.core.utils import filter_overrides
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
        from omegaconf import OmegaConf

        params = dict(self.params)
        executor = submitit.AutoExecutor(cluster="slurm", folder=params.pop("submitit_folder"),
                                         slurm_max_num_timeout=params.pop("max_num_timeout"))
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("SLURM sweep output dir: %s", sweep_dir)
        jobs_args = []
        for num, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", num, " ".join(filter_overrides(overrides)))
            jobs_args.append((list(overrides), "hydra.sweep.dir", num, f"job_id_for_{num}", Singleton.get_state()))
        jobs = executor.map_array(self, *zip(*jobs_args))
        log.info("submitted SLURM jobs %s", " ".join(job.job_id for job in jobs))
        self.wait(jobs)
        return [self.outcome(job, list(overrides), num)
                for num, (job, overrides) in enumerate(zip(jobs, job_overrides), start=initial_job_idx)]

    @staticmethod
    def wait(jobs: Sequence[Any]) -> None:
        """Until every job has left the queue; a requeued job stays in it (pending again)."""
        left = {job.job_id for job in jobs}
        while left:
            time.sleep(POLL_S)
            left &= queued(sorted(left))

    def outcome(self, job: Any, overrides: list[str], num: int) -> JobReturn:
        """The job's own return (rank 0's). A job whose record is not completed or failed when it left the queue
        (killed on its node, cancelled: no attempt is left to finish it) has its record marked failed here."""
        from submitit.core.utils import pickle_load

        record_path = self.run_folder(overrides, num) / "result.json"
        state = read_record(record_path).get("state") if record_path.is_file() else None
        if state not in ("completed", "failed", "pruned"):
            self.record_lost(job, record_path, overrides, state)
        elif job.paths.result_pickle.exists():
            status, value = pickle_load(job.paths.result_pickle)
            if status == "success":
                return value[0] if isinstance(value, list) else value
            log.error("SLURM job %s (sweep job %d) raised:\n%s", job.job_id, num, value)
        lost = JobReturn(overrides=overrides, status=JobStatus.COMPLETED)  # as a failed job returns: the sweep goes on
        lost._return_value = math.nan
        return lost

    def run_folder(self, overrides: list[str], num: int) -> Path:
        """The job's run folder, as Hydra names it (hydra.sweep.dir / hydra.sweep.subdir)."""
        from omegaconf import open_dict

        config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(config.hydra.job):
            config.hydra.job.num = num
        return Path(config.hydra.sweep.dir) / str(config.hydra.sweep.subdir)

    @staticmethod
    def record_lost(job: Any, path: Path, overrides: list[str], state: str | None) -> None:
        """A job killed on its node cannot say so: its record (`running`, or `interrupted` by a cancel) says it here."""
        error = (f"SLURM job {job.job_id} ended on its node without finishing (killed, cancelled or its node failed; "
                 f"its record said {state}); see {job.paths.stderr}")
        log.error("%s: %s", path.parent, error)
        record = read_record(path) if path.is_file() else {"metrics": {}, "overrides": overrides, "attempts": 1}
        write_json(path, {**record, "state": "failed", "error": error, "finished_at": round(time.time(), 3)})
