"""Warm workers: several jobs trained one after another in ONE process (the `local_gpus`
launcher's worker, or any process that calls dgl.trainer.train twice) give each job
exactly the result it gets alone in a fresh process.

The sweeps run `python train.py -m ... hydra/launcher=local_gpus` on the CPU with the tiny
configs of tests/helpers.py; the reference is the same sweep with
`hydra.launcher.reuse_workers=false` (a fresh process per job)."""

import ctypes
import gc
import json
import os
import re
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import REPO, TINY, make_cfg

EPOCHS = ["train.epochs=3", "train.eval_every=2"]
# four jobs of one shape: seed (weights, data order, noisy labels) and lam differ; the lr
# falls within each job (milestones at epochs 1 and 2), so each later job must start from
# a reset lr and scheduler
SWEEP = ["seed=1,2", "lam=0.3,0.6", "lr=0.05", "noise.rate=0.2"]
JOBS = [(1, 0.3), (1, 0.6), (2, 0.3), (2, 0.6)]  # (seed, lam) in sweep order


def job_dir(sweep_dir, seed, lam):
    (found,) = Path(sweep_dir).glob(f"*lam={lam},*seed={seed},*")
    return found


def sweep(sweep_dir, *overrides, reuse=True, check=True, wait=True, epochs=EPOCHS, first=()):
    # Hydra's sweep order: the first swept key on the command line varies slowest
    cmd = [sys.executable, str(REPO / "train.py"), "-m", *first, *TINY, *epochs, *overrides,
           "hydra/launcher=local_gpus", "hydra.launcher.gpus=[]",
           f"hydra.launcher.reuse_workers={str(reuse).lower()}", f"hydra.sweep.dir={sweep_dir}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="0")
    if not wait:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"sweep failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def job_log(job_dir):
    return (Path(job_dir) / "train.log").read_text()


def engine_lines(job_dir):
    return [line.split("engine: ", 1)[1] for line in job_log(job_dir).splitlines() if "engine: " in line]


def assert_same_run(ours, theirs):
    """result.json and metrics.csv equal to the bit, except wall-clock timings."""
    a = json.loads((Path(ours) / "result.json").read_text())
    b = json.loads((Path(theirs) / "result.json").read_text())
    assert a["status"] == "completed"
    for key in sorted((set(a) | set(b)) - {"time_seconds"}):
        assert a.get(key) == b.get(key), key
    columns = lambda d: pd.read_csv(Path(d) / "metrics.csv", dtype=str).drop(columns="seconds")
    pd.testing.assert_frame_equal(columns(ours), columns(theirs), check_exact=True)


# its module-scoped fixture is built once: under pytest-xdist, this file runs on one worker
pytestmark = pytest.mark.xdist_group("warm_worker")


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """The jobs of SWEEP, each in a fresh process."""
    root = tmp_path_factory.mktemp("alone")
    sweep(root, *SWEEP, reuse=False)
    return root


def test_jobs_through_one_warm_worker_equal_jobs_run_alone(tmp_path, alone):
    warm = tmp_path / "warm"
    proc = sweep(warm, *SWEEP, "hydra.launcher.cpu_jobs=1")
    assert "4 jobs done, 4 ok, 0 failed" in proc.stdout + proc.stderr
    pids = set()
    for i, job in enumerate(JOBS):
        assert_same_run(job_dir(warm, *job), job_dir(alone, *job))
        (line,) = engine_lines(job_dir(warm, *job))
        assert line.startswith("new" if i == 0 else f"warm, job {i + 1} on it"), line
        pids.add(line.split("pid ")[1])
    assert len(pids) == 1, "all four jobs ran in one worker process"


def test_jobs_of_one_shape_go_to_the_same_worker(tmp_path):
    """In sweep order the jobs alternate between two widths (lam varies slowest); the one
    worker runs both jobs of one width, then both of the other: a new engine per width."""
    proc = sweep(tmp_path / "s", "model.width=0.125,0.25", "hydra.launcher.cpu_jobs=1",
                 epochs=["train.epochs=1"], first=["lam=0.3,0.6"])
    log = proc.stdout + proc.stderr
    listed = re.findall(r"#\d : .*model.width=([\d.]+)", log)
    assert listed == ["0.125", "0.25", "0.125", "0.25"], log  # Hydra's order alternates
    started = [(re.search(r"lam=([\d.]+)", line)[1], re.search(r"model.width=([\d.]+)", line)[1])
               for line in log.splitlines() if " start on CPU " in line]
    assert started == [("0.3", "0.125"), ("0.6", "0.125"), ("0.3", "0.25"), ("0.6", "0.25")], log
    engines = re.findall(r"engine: (new|warm, job \d on it)", log)
    assert engines == ["new", "warm, job 2 on it", "new", "warm, job 2 on it"], log


def test_a_failed_job_does_not_affect_the_next(tmp_path, alone):
    """The second job fails at the end of its first epoch, on the warm engine (a directory
    stands where its metrics.csv must go): a fresh worker runs the jobs after it, and they
    equal the jobs run alone."""
    warm = tmp_path / "warm"
    name = job_dir(alone, *JOBS[1]).name
    (warm / name / "metrics.csv").mkdir(parents=True)
    proc = sweep(warm, *SWEEP, "hydra.launcher.cpu_jobs=1", check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "4 jobs done, 3 ok, 1 failed (#1)" in log, log
    assert json.loads((warm / name / "result.json").read_text())["status"] == "failed"
    for job in (JOBS[0], JOBS[2], JOBS[3]):
        assert_same_run(job_dir(warm, *job), job_dir(alone, *job))
    pid = [engine_lines(job_dir(warm, *job))[0].split("pid ")[1] for job in JOBS]
    assert pid[0] == pid[1] != pid[2] == pid[3], pid
    assert engine_lines(job_dir(warm, *JOBS[2]))[0].startswith("new")


def test_killed_worker_fails_its_job_only_and_a_rerun_resumes_it(tmp_path, alone):
    """kill -9 of the worker in the middle of the second job: that job is FAILED, the
    others run (in a fresh worker); a rerun with new jobs in front resumes the killed job
    on a warm engine, to the result it has alone."""
    warm = tmp_path / "warm"
    proc = sweep(warm, *SWEEP, "hydra.launcher.cpu_jobs=1", wait=False)
    try:
        deadline = time.time() + 300
        while not list(warm.glob("*lam=0.6,*seed=1,*/checkpoint.pt")):  # an epoch done
            assert time.time() < deadline and proc.poll() is None, "the job ended before it could be killed"
            time.sleep(0.05)
        victim = job_dir(warm, *JOBS[1])
        worker_pid = int((victim / ".lock").read_text().split()[0])
        os.kill(worker_pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out
    assert "4 jobs done, 3 ok, 1 failed (#1)" in out and "died with signal SIGKILL" in out, out
    assert (victim / "checkpoint.pt").exists() and not (victim / "result.json").exists()

    rerun = sweep(warm, "seed=0,1,2", *SWEEP[1:], "hydra.launcher.cpu_jobs=1")
    assert "6 jobs done, 6 ok, 0 failed" in rerun.stdout + rerun.stderr
    assert "resumed from" in job_log(victim)
    assert engine_lines(victim)[-1].startswith("warm, job 3 on it")  # after the two seed=0 jobs
    assert_same_run(victim, job_dir(alone, *JOBS[1]))


def test_memory_does_not_grow_from_job_to_job(tmp_path):
    """Six jobs in this process on one engine: every finished job's Trainer is freed,
    and the resident memory after the third job stays where it is."""
    from dgl import trainer as trainer_module
    from dgl.engine import WARM

    def rss_mb():
        # freed heap pages back to the OS first: glibc keeps some, by tens of MB from job to job
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    WARM.drop()
    made, rss, engines = [], [], set()
    original_init = trainer_module.Trainer.__init__

    def recording_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        made.append(weakref.ref(self))
        engines.add(id(self.engine))

    trainer_module.Trainer.__init__ = recording_init
    try:
        for seed in range(6):
            cfg = make_cfg([*TINY, "train.epochs=2", "train.progress=false", f"seed={seed}"])
            (tmp_path / str(seed)).mkdir()
            trainer_module.train(cfg, tmp_path / str(seed))
            gc.collect()
            rss.append(rss_mb())
    finally:
        trainer_module.Trainer.__init__ = original_init
    assert len(engines) == 1, "the six jobs did not share one engine"
    assert all(ref() is None for ref in made), "a finished job's Trainer is still alive"
    assert rss[-1] - rss[2] < 20, f"resident memory grew: {[round(x) for x in rss]} MB"


def test_each_job_runs_under_its_own_kernel_setting_and_never_shares_an_engine_across_it(tmp_path):
    """train.deterministic is in force inside every job, fresh or warm, and a job that
    differs from the last one only in it gets an engine of its own."""
    import torch

    from dgl import trainer as trainer_module
    from dgl.engine import WARM

    WARM.drop()
    seen, original_fit = [], trainer_module.Trainer.fit

    def recording_fit(self):
        seen.append((self.cfg.train.deterministic, torch.are_deterministic_algorithms_enabled(),
                     torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, self.engine.jobs))
        return original_fit(self)

    trainer_module.Trainer.fit = recording_fit
    try:
        for i, deterministic in enumerate((True, True, False, True)):
            cfg = make_cfg([*TINY, "train.epochs=1", "train.progress=false", f"train.deterministic={deterministic}"])
            (tmp_path / str(i)).mkdir()
            result = trainer_module.train(cfg, tmp_path / str(i))
            assert result["deterministic"] is deterministic and result["config"]["train"]["deterministic"] is deterministic
    finally:
        trainer_module.Trainer.fit = original_fit
        WARM.drop()
    assert [s[:4] for s in seen] == [(True, True, True, False), (True, True, True, False),
                                     (False, False, False, True), (True, True, True, False)]
    # the second job is warm on the first one's engine; each switch builds a new engine
    assert [s[4] for s in seen] == [1, 2, 1, 1]
