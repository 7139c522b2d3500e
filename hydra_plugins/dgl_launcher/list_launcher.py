"""`hydra/launcher=list`: print the jobs a multirun would run, each with its state, the
lambda it trains with and its folder; run none, write nothing.

    python train.py -m experiment=q1 hydra/launcher=list

Each job's config is composed and checked as a real launch would check it (dgl.preflight),
so a job that would be refused is listed as `invalid` with the reason.
"""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus, setup_globals
from hydra.plugins.launcher import Launcher


@dataclass
class ListLauncherConf:
    _target_: str = "hydra_plugins.dgl_launcher.list_launcher.ListLauncher"


ConfigStore.instance().store(group="hydra/launcher", name="list", node=ListLauncherConf, provider="dgl_launcher")


class ListLauncher(Launcher):
    checks_jobs = True  # so the `dgl` sweeper neither checks the jobs first nor writes anything

    def setup(self, *, hydra_context, task_function, config):
        self.hydra_context, self.config = hydra_context, config

    def launch(self, job_overrides, initial_job_idx):
        from dgl.config import ConfigError
        from dgl.data import DataError
        from dgl.preflight import check_sweep_job, sweep_job
        from dgl.sweeps import job_state

        setup_globals()
        counts, returns = {}, []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            sweep_config = sweep_job(self.hydra_context, self.config, overrides, idx)
            try:
                _, folder = check_sweep_job(sweep_config, data_checked=False)
                state, note = job_state(folder), f"  ->  {folder}"
            except (ConfigError, DataError) as e:
                state, note = "invalid", f"  ->  {e}"
            counts[state] = counts.get(state, 0) + 1
            print(f"{idx:4d} {state:11s} lam={sweep_config.lam} | {' '.join(overrides)}{note}")
            returns.append(JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED, _return_value=None))
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        print(f"{len(job_overrides)} jobs ({summary}); sweep folder {self.config.hydra.sweep.dir}")
        return returns
