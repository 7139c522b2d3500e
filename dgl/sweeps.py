"""Sweeps on disk: which jobs a sweep folder should hold, which it holds, and their state.
Read-only: nothing here writes to an output folder.

A sweep folder is one Hydra multirun folder (`outputs/<name>/`): Hydra writes the sweep's
full config to `multirun.yaml` there, and each job folder gets `.hydra/overrides.yaml`.
Jobs are matched by their overrides, so this works whatever the folder names are.
"""

import json
from pathlib import Path

from omegaconf import OmegaConf

from dgl import records

STATES = ("completed", "diverged", "failed", "running", "interrupted", "missing")


def expand(sweeper_params, task_overrides):
    """Every job's override list, expanded exactly as Hydra's basic sweeper expands a
    multirun: the config's hydra.sweeper.params first, then the command line's overrides."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in (sweeper_params or {}).items()] + list(task_overrides)
    overrides = OverridesParser.create().parse_overrides(params)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def expected_jobs(sweep_dir):
    """The override lists of every job of the last multirun into `sweep_dir`."""
    cfg = OmegaConf.load(Path(sweep_dir) / "multirun.yaml")
    return expand(OmegaConf.select(cfg, "hydra.sweeper.params"), cfg.hydra.overrides.task)


def existing_jobs(sweep_dir):
    """{frozenset(overrides): job folder} for every job folder Hydra made under `sweep_dir`."""
    jobs = {}
    for overrides_file in Path(sweep_dir).rglob(".hydra/overrides.yaml"):
        job_dir = overrides_file.parent.parent
        jobs[frozenset(OmegaConf.load(overrides_file))] = job_dir
    return jobs


def job_state(job_dir):
    """One of STATES (plus `unreadable`), from the job folder alone."""
    if job_dir is None or not Path(job_dir).exists():
        return "missing"
    try:
        status = json.loads((Path(job_dir) / records.RESULT).read_text()).get("status")
    except FileNotFoundError:
        return "running" if records.is_locked(job_dir) else "interrupted"
    except (OSError, ValueError):
        return "unreadable"
    return status if status in STATES else "unreadable"


def sweep_folders(root):
    """Every sweep folder at or below `root` (folders holding multirun.yaml)."""
    return sorted(p.parent for p in Path(root).rglob("multirun.yaml"))


def sweep_table(sweep_dir):
    """[(overrides, job_dir or None, state, result or None)] for every expected job."""
    existing = existing_jobs(sweep_dir)
    rows = []
    for overrides in expected_jobs(sweep_dir):
        job_dir = existing.get(frozenset(overrides))
        state = job_state(job_dir)
        result = records.read_result(job_dir) if state in ("completed", "diverged", "failed") else None
        rows.append((overrides, job_dir, state, result))
    return rows
