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
class LocalGpusLauncherConf:
    _target_: str = "hydra_plugins.dgl_launcher.local_gpus_launcher.LocalGpusLauncher"
    # How many jobs share one GPU at a time.
    jobs_per_gpu: int = 1
    # GPU ids to use, written verbatim into each worker's CUDA_VISIBLE_DEVICES
    # (a list such as [0,1], or a string "0,1"; UUIDs work too).
    # null: every visible GPU (CUDA_VISIBLE_DEVICES if set, else nvidia-smi -L,
    # else torch.cuda.device_count() in a subprocess).  [] forces the CPU.
    gpus: Any | None = None
    # How many jobs at a time when there is no GPU (each gets cores / cpu_jobs threads
    # unless OMP_NUM_THREADS is set).
    cpu_jobs: int = 1
    # One long-lived worker per slot that runs job after job (it imports torch once and
    # keeps the compiled model between jobs of the same shape, dgl.identity.shape: a free
    # worker takes the next job of the shape it ran last); false: a fresh process per job.
    reuse_workers: bool = True
    # multiprocessing start method of the workers; "spawn" is the safe one.
    start_method: str = "spawn"
    # Seconds a worker may keep living after it was told to exit (atexit hooks,
    # non-daemon threads) before it is SIGTERMed, then SIGKILLed 10 s later.
    exit_grace_s: float = 60.0


ConfigStore.instance().store(
    group="hydra/launcher",
    name="local_gpus",
    node=LocalGpusLauncherConf,
    provider="dgl_launcher",
)
