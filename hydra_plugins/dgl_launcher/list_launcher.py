"""`hydra/launcher=list`: print the jobs a multirun would run, and their state; run none.

    python train.py -m experiment=q1 hydra/launcher=list

Jobs are matched to existing job folders by their overrides (dgl.sweeps), so `completed`
means a real launch would skip the job. (Hydra's sweeper itself writes the sweep's
multirun.yaml before any launcher runs, so listing records the sweep as `dgl.status` sees it.)
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
    def setup(self, *, hydra_context, task_function, config):
        self.hydra_context, self.config = hydra_context, config

    def launch(self, job_overrides, initial_job_idx):
        from dgl.sweeps import existing_jobs, job_state

        setup_globals()
        existing = existing_jobs(self.config.hydra.sweep.dir)
        counts, returns = {}, []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            job_dir = existing.get(frozenset(overrides))
            state = job_state(job_dir)
            counts[state] = counts.get(state, 0) + 1
            print(f"{idx:4d} {state:11s} {' '.join(overrides)}" + (f"  ->  {job_dir}" if job_dir else ""))
            returns.append(JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED, _return_value=None))
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        print(f"{len(job_overrides)} jobs ({summary}); sweep folder {self.config.hydra.sweep.dir}")
        return returns
