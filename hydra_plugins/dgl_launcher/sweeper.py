"""`hydra/sweeper=dgl` (the project's default): Hydra's basic sweeper, with every job
checked before any job runs.

The basic sweeper launches a sweep's jobs in order, so one bad value (`-m lam=1.5,0.4`)
is found only when its job starts, after the jobs before it trained. This one composes
every job's config first and runs dgl.preflight on each (valid values, data present, a
job folder holding nothing of another config); the first problem stops the sweep with one
line naming the job, before the sweep folder is created. Then it launches all jobs in one
batch through whatever launcher is configured. With `hydra/launcher=list` it writes
nothing and leaves the checking to the listing, which shows every job's state.
"""

from dataclasses import dataclass
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf


@dataclass
class DglSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.dgl_launcher.sweeper.DglSweeper"


ConfigStore.instance().store(group="hydra/sweeper", name="dgl", node=DglSweeperConf, provider="dgl_launcher")


def job_dir(sweep_config):
    return Path(sweep_config.hydra.sweep.dir) / str(sweep_config.hydra.sweep.subdir)


def check(sweep_config, data_checked):
    """dgl.preflight.check_job for one job of a sweep; returns the job's folder."""
    from hydra.core.hydra_config import HydraConfig

    from dgl.preflight import check_job, task_config

    HydraConfig.instance().set_config(sweep_config)  # for ${hydra:...} in the job's config
    folder = job_dir(sweep_config)
    check_job(task_config(sweep_config), folder, data_checked)
    return folder


class DglSweeper(BasicSweeper):
    def sweep(self, arguments):
        from dgl.config import ConfigError
        from dgl.data import DataError
        from hydra_plugins.dgl_launcher.list_launcher import ListLauncher

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(self._parse_config() + list(arguments))
        jobs = [job for batch in self.split_arguments(overrides, None) for job in batch]
        if not isinstance(self.launcher, ListLauncher):
            data_checked = {}
            for num, job in enumerate(jobs):
                sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(job))
                try:
                    check(sweep_config, data_checked)
                except (ConfigError, DataError) as e:
                    raise SystemExit(f"error: job #{num} ({' '.join(job)}): {e}; nothing was run") from None
            sweep_dir = Path(self.config.hydra.sweep.dir)
            sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        results = self.launcher.launch(jobs, initial_job_idx=0)
        for r in results:
            _ = r.return_value  # raises the exception of a failed job, as the basic sweeper does
        return [results]
