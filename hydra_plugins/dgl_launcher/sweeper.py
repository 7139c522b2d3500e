"""`hydra/sweeper=dgl` (the project's default): Hydra's basic sweeper, with every job
checked before any job runs.

The basic sweeper launches a sweep's jobs in order, so one bad value (`-m lam=1.5,0.4`)
is found only when its job starts, after the jobs before it trained. This one composes
every job's config first and runs dgl.preflight on each (valid values, data present, a
job folder holding nothing of another config); the first problem stops the sweep with one
line naming the job, before the sweep folder is created. Then it launches the jobs through
whatever launcher is configured: all at once, or `hydra.sweeper.max_batch_size` at a time,
a batch only after the one before it ended without a failed job. A launcher that checks
each job itself and writes nothing (`checks_jobs = True`: `hydra/launcher=list`) gets
every job in one batch, unchecked.
"""

from dataclasses import dataclass
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf


@dataclass
class DglSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.dgl_launcher.sweeper.DglSweeper"


ConfigStore.instance().store(group="hydra/sweeper", name="dgl", node=DglSweeperConf, provider="dgl_launcher")


class DglSweeper(BasicSweeper):
    def sweep(self, arguments):
        from dgl.config import ConfigError
        from dgl.data import DataError
        from dgl.preflight import check_sweep_job, kernels_note, sweep_job
        from dgl.sweeps import expand

        jobs = expand(self.params, arguments, self.hydra_context.config_loader)
        batch = len(jobs)
        if not getattr(self.launcher, "checks_jobs", False):
            data_checked, checked = {}, []
            for num, job in enumerate(jobs):
                try:
                    checked.append(check_sweep_job(sweep_job(self.hydra_context, self.config, job, num), data_checked))
                except (ConfigError, DataError) as e:
                    raise SystemExit(f"error: job #{num} ({' '.join(job)}): {e}; nothing was run") from None
            sweep_dir = Path(self.config.hydra.sweep.dir)
            note = kernels_note(sweep_dir, checked)
            if note:
                print(note, flush=True)
            sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
            batch = self.max_batch_size if (self.max_batch_size or 0) > 0 else batch
        returns = []
        for start in range(0, len(jobs), batch):
            results = self.launcher.launch(jobs[start:start + batch], initial_job_idx=start)
            for r in results:
                _ = r.return_value  # raises a failed job's exception, as the basic sweeper does
            returns.append(results)
        return returns
