"""Sweeps on disk: which jobs a sweep folder should hold, which it holds, and their state.
Read-only: nothing here writes to an output folder.

A sweep folder is one Hydra multirun folder (`outputs/<name>/`): Hydra writes the sweep's
full config to `multirun.yaml` there, and each job folder gets `.hydra/overrides.yaml`.
Jobs are matched by their overrides, so this works whatever the folder names are.
A single run (`python train.py ...`, no -m) is a job folder with no multirun.yaml above it.
A file that cannot be read as what it should be raises Damaged, naming the file.
"""

import json
from pathlib import Path

import yaml
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf

from dgl import records

STATES = ("completed", "diverged", "failed", "running", "interrupted", "missing")


class Damaged(Exception):
    """A file in an output folder that cannot be read as what it should be ("path: why")."""


def _load_yaml(path):
    try:
        return OmegaConf.load(path)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise Damaged(f"{path}: unreadable ({str(e).splitlines()[0]})") from None


def expand(sweeper_params, task_overrides, config_loader=None):
    """Every job's override list, as the `dgl` sweeper launches them and Hydra's basic sweeper
    expands them: hydra.sweeper.params first, then the command line's overrides.
    config_loader: Hydra's, for sweeps over a config group's options (`model=glob(*)`)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in (sweeper_params or {}).items()] + list(task_overrides)
    overrides = OverridesParser.create(config_loader).parse_overrides(params)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def expected_jobs(sweep_dir):
    """The override lists of every job of the last multirun into `sweep_dir`."""
    path = Path(sweep_dir) / "multirun.yaml"
    cfg = _load_yaml(path)
    task = OmegaConf.select(cfg, "hydra.overrides.task") if isinstance(cfg, DictConfig) else None
    if not isinstance(task, ListConfig):
        raise Damaged(f"{path}: not a Hydra multirun.yaml (empty, truncated or foreign: no hydra.overrides.task)")
    try:
        return expand(OmegaConf.select(cfg, "hydra.sweeper.params"), task)
    except HydraException as e:
        raise Damaged(f"{path}: overrides Hydra cannot parse ({str(e).splitlines()[0]})") from None


def job_overrides(job_dir):
    """A job's override list: from .hydra/overrides.yaml, else from its result.json."""
    path = Path(job_dir) / ".hydra" / "overrides.yaml"
    try:
        overrides = _load_yaml(path) if path.exists() else None
    except Damaged:
        overrides = None
    if isinstance(overrides, ListConfig):
        return list(overrides)
    result = records.read_result(job_dir) or {}
    if isinstance(result.get("overrides"), list):
        return result["overrides"]
    raise Damaged(f"{path}: empty or unreadable, and no result.json with the job's overrides")


def existing_jobs(sweep_dir, damaged=None):
    """[(overrides, job folder)] for every job folder Hydra made under `sweep_dir`, the most
    recently started last. Job folders whose overrides cannot be read are left out, and
    named in the list `damaged`."""
    jobs = []
    for overrides_file in sorted(Path(sweep_dir).rglob(".hydra/overrides.yaml"), key=lambda p: p.stat().st_mtime):
        job_dir = overrides_file.parent.parent
        try:
            jobs.append((job_overrides(job_dir), job_dir))
        except Damaged as e:
            if damaged is not None:
                damaged.append(str(e))
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


def run_folders(root):
    """Every single-run job folder at or below `root`: folders holding result.json or
    .hydra/, with no sweep folder at or above them (within `root`)."""
    root, sweeps = Path(root), sweep_folders(root)
    found = {p.parent for p in root.rglob(records.RESULT)} | {p.parent for p in root.rglob(".hydra")}
    return sorted(d for d in found if not any(d == s or s in d.parents for s in sweeps))


def _row(overrides, job_dir):
    state = job_state(job_dir)
    result = records.read_result(job_dir) if state in ("completed", "diverged", "failed") else None
    return overrides, job_dir, state, result


def sweep_table(sweep_dir, damaged=None):
    """(rows, earlier): a row (overrides, job_dir or None, state, result or None) for every
    job of the last multirun into `sweep_dir` (in the latest folder of its overrides), and
    one for every other job folder there: from an earlier sweep into the same folder.
    Raises Damaged if multirun.yaml is; damaged job folders are named in the list `damaged`."""
    expected = expected_jobs(sweep_dir)
    existing = existing_jobs(sweep_dir, damaged)
    latest = {frozenset(overrides): job_dir for overrides, job_dir in existing}
    rows = [_row(overrides, latest.get(frozenset(overrides))) for overrides in expected]
    used = {job_dir for _, job_dir, _, _ in rows}
    return rows, [_row(overrides, job_dir) for overrides, job_dir in existing if job_dir not in used]


def runs_table(root, damaged=None):
    """The same rows for the single runs under `root` (overrides: the folder name if unreadable)."""
    rows = []
    for job_dir in run_folders(root):
        try:
            overrides = job_overrides(job_dir)
        except Damaged as e:
            if damaged is not None:
                damaged.append(str(e))
            overrides = [job_dir.name]
        rows.append(_row(overrides, job_dir))
    return rows
