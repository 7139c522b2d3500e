"""Structured config of the ``local_gpus`` launcher (group ``hydra/launcher``).

Hydra imports every module under ``hydra_plugins.*`` whose name does not start
with ``_`` while it scans for plugins; importing this module registers the
config in the ConfigStore, so ``hydra/launcher=local_gpus`` works without any
YAML file.  Keep this module cheap to import (no torch, no cloudpickle).
"""

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class LocalGpusLauncherConf:  # the options: docs/LOCAL_LAUNCHER.md
    _target_: str = "hydra_plugins.dgl_launcher.local_gpus_launcher.LocalGpusLauncher"
    jobs_per_gpu: int = 1  # jobs that share one GPU at a time
    # GPU ids, written verbatim into each worker's CUDA_VISIBLE_DEVICES; null: every visible GPU; []: the CPU
    gpus: Any | None = None
    cpu_jobs: int = 1  # jobs at a time when there is no GPU (each gets cores / cpu_jobs threads)
    reuse_workers: bool = True  # one long-lived worker per slot runs job after job; false: a process per job
    start_method: str = "spawn"  # multiprocessing start method of the workers; "spawn" is the safe one
    # seconds a worker may keep living after it was told to exit, before SIGTERM (SIGKILL 10 s later)
    exit_grace_s: float = 60.0


ConfigStore.instance().store(group="hydra/launcher", name="local_gpus", node=LocalGpusLauncherConf,
                             provider="dgl_launcher")
