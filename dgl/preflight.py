"""Checks made before a job may touch its folder: the config is valid, its data is there,
and the folder holds nothing produced by another config.

They run three times, always before anything trains: for a single run in a Hydra callback
(before Hydra creates the run folder), for a sweep in the `dgl` sweeper (every job, before
the sweep folder exists or any job starts, whatever the launcher; `hydra/launcher=list`
runs them itself), and again in each job (dgl.run), which may start much later on another
machine.
"""

from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf, open_dict

from dgl import identity, records
from dgl.config import ConfigError, device_type, validate


def check_folder(cfg, job_dir):
    """ConfigError if `job_dir` holds a run (started or finished) of another config."""
    recorded = records.read_config(job_dir)
    if recorded is None:
        return
    theirs = identity.computational(recorded)
    mine = identity.computational(identity.recorded(cfg, device_type(cfg)))
    if theirs.get("train", {}).get("precision") == "auto":  # recorded before precision was resolved
        theirs["train"]["precision"] = mine["train"]["precision"]
    diffs = identity.differences(theirs, mine)
    if diffs:
        raise ConfigError(f"{job_dir} holds a run of another config ({identity.describe(diffs)}); it is "
                          f"neither reused nor overwritten: give this run its own folder "
                          f"(hydra.run.dir=... or hydra.sweep.dir=...)")
    made_with = identity.deterministic(recorded)
    if made_with != cfg.train.deterministic and not records.is_finished(job_dir):
        setting = f"train.deterministic={str(made_with).lower()}"
        raise ConfigError(f"{job_dir} holds an interrupted run made with {setting}"
                          f"{'' if 'deterministic' in recorded.get('train', {}) else ' (recorded before the key existed)'}"
                          f": resume it as it was run (add {setting}), or give this run its own folder")


def kernels_note(sweep_dir, jobs):
    """One line when finished runs in the sweep folder were made with another
    train.deterministic than this sweep's jobs (cfg, folder) would use; else None."""
    mine = {bool(cfg.train.deterministic) for cfg, _ in jobs}
    other = [folder for cfg, folder in jobs if records.is_finished(folder)
             and identity.deterministic(records.read_config(folder) or {}) != cfg.train.deterministic]
    if not other or len(mine) != 1:
        return None
    (setting,) = mine
    return (f"note: {len(other)} finished runs in {sweep_dir} were made with train.deterministic="
            f"{str(not setting).lower()} (or before the key existed); this sweep runs the rest with "
            f"train.deterministic={str(setting).lower()}: add train.deterministic={str(not setting).lower()} "
            f"to continue it as it was run")


def check_job(cfg, job_dir, data_checked=None):
    """Every check for one job (cfg without `hydra`); ConfigError or DataError, one line.
    data_checked: {data config: None or its error}, so that a sweep checks each data config
    once; pass False to skip the data check (listing a sweep must not download anything)."""
    from dgl.data import DataError, ensure_available

    validate(cfg)
    if data_checked is not False:
        key = OmegaConf.to_yaml(cfg.data, resolve=True)
        cache = {} if data_checked is None else data_checked
        if key not in cache:
            try:
                ensure_available(cfg.data)
                cache[key] = None
            except DataError as e:
                cache[key] = e
        if cache[key] is not None:
            raise cache[key]
    check_folder(cfg, job_dir)


def task_config(config):
    """A Hydra config without its `hydra` node (what the task function receives)."""
    return OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])


def sweep_job(hydra_context, config, overrides, num):
    """Job `num` of a sweep composed as a launcher composes it: Hydra's load_sweep_config,
    then hydra.job.num and hydra.job.id set as Hydra's basic launcher sets them."""
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = sweep_config.hydra.job.num = num
    return sweep_config


def check_sweep_job(sweep_config, data_checked=None):
    """check_job for one job of a sweep (from sweep_job); returns (the job's config, its folder)."""
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(sweep_config)  # for ${hydra:...} in the job's config
    folder = Path(sweep_config.hydra.sweep.dir) / str(sweep_config.hydra.sweep.subdir)
    cfg = task_config(sweep_config)
    check_job(cfg, folder, data_checked)
    return cfg, folder


class Preflight(Callback):
    """hydra.callbacks.preflight: checks a single run before Hydra creates its folder."""

    def on_run_start(self, config, **kwargs):
        from hydra.core.hydra_config import HydraConfig

        from dgl.data import DataError

        HydraConfig.instance().set_config(config)  # so ${hydra:...} resolves (e.g. data.root's default)
        try:
            check_job(task_config(config), Path(config.hydra.run.dir))
        except (ConfigError, DataError) as e:
            raise SystemExit(f"error: {e}") from None
