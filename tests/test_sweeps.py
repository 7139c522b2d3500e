"""Sweeps: the experiment grids, a real multirun through the local launcher, killing it,
rerunning it, and what dgl.status says before, during and after."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dgl import records
from dgl.status import main as status_main
from dgl.sweeps import expand
from tests.helpers import REPO, TINY, make_cfg, run_train


@pytest.mark.parametrize("experiment,n_jobs", [("q1", 300), ("q3", 150)])
def test_q1_and_q3_expand_to_exactly_the_notebooks_grids(experiment, n_jobs):
    """The jobs Hydra's basic sweeper makes of `-m experiment=...` (the sweep that
    `hydra/launcher=list` prints; listing itself runs Hydra's per-job checks, ~0.1 s a job)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    jobs = expand(cfg.hydra.sweeper.params, [f"experiment={experiment}"])
    assert len(jobs) == n_jobs and len({frozenset(j) for j in jobs}) == n_jobs
    cells = set()
    for job in jobs:
        job_cfg = dict(o.split("=", 1) for o in job)
        cells.add(tuple(job_cfg[k] for k in sorted(job_cfg) if k != "seed"))
    assert len(cells) == n_jobs // (10 if experiment == "q1" else 5)  # 10 or 5 seeds per cell


def test_q1_lambda_grid_depends_on_noise_rate():
    grid = {rate: [make_cfg(["experiment=q1", f"noise.rate={rate}", f"lam_index={i}"]).lam for i in range(5)]
            for rate in (0.4, 0.8)}
    assert grid == {0.4: [0.42, 0.44, 0.46, 0.48, 0.50], 0.8: [0.38, 0.40, 0.42, 0.44, 0.46]}
    q3 = make_cfg(["experiment=q3"])
    assert q3.model.name == "tv_resnet18" and q3.name == "q3_lr_lambda_interaction"


def tree_digest(root):
    """A digest of every file's path, size, mtime and content under root."""
    h = hashlib.sha256()
    for path in sorted(Path(root).rglob("*")):
        if path.is_file():
            st = path.stat()
            h.update(f"{path}{st.st_size}{st.st_mtime_ns}".encode() + path.read_bytes())
    return h.hexdigest()


def status_text(root, capsys):
    before = tree_digest(root)
    status_main([str(root), "--all"])
    assert tree_digest(root) == before, "dgl.status modified the output folder"
    return capsys.readouterr().out


SWEEP = [*TINY, "train.epochs=6", "lam=0.2,0.8", "seed=0,1"]
LOCAL = ["hydra/launcher=local_gpus", "hydra.launcher.cpu_jobs=2"]


def test_local_sweep_killed_and_rerun_loses_nothing(tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    cmd = [sys.executable, str(REPO / "train.py"), "-m", *SWEEP, *LOCAL, f"hydra.sweep.dir={sweep_dir}"]
    launcher = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
    # Kill the launcher once one job has finished and another has checkpointed early in its
    # run (at most 2 of 6 epochs written): the epochs it has left outlast the 0.1 s poll.
    def early(ckpt):
        metrics = ckpt.parent / "metrics.csv"
        return not (ckpt.parent / "result.json").exists() and metrics.exists() and \
            len(metrics.read_text().splitlines()) <= 3

    deadline = time.time() + 240
    while True:
        assert time.time() < deadline and launcher.poll() is None, "sweep ended before the kill"
        results = list(sweep_dir.rglob("result.json"))
        if results and any(early(c) for c in sweep_dir.rglob("checkpoint.pt")):
            break
        time.sleep(0.1)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    # the workers die with the launcher (PR_SET_PDEATHSIG), and their job locks with them
    deadline = time.time() + 30
    while any(records.is_locked(lock.parent) for lock in sweep_dir.rglob(records.LOCK)):
        assert time.time() < deadline, "a worker outlived the launcher"
        time.sleep(0.1)

    during = status_text(tmp_path, capsys)
    assert "4 jobs" in during and "completed" in during and "interrupted" in during, during
    finished = {p: p.stat().st_mtime_ns for p in sweep_dir.rglob("result.json")}

    rerun = run_train(["-m", *SWEEP, *LOCAL, f"hydra.sweep.dir={sweep_dir}"])
    log = rerun.stdout + rerun.stderr + "".join(p.read_text() for p in sweep_dir.rglob("train.log"))
    assert "resumed from" in log and "already completed, nothing to do" in log
    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was redone"

    after = status_text(tmp_path, capsys)
    assert "4 jobs | 4 completed" in after, after
    results = [json.loads(p.read_text()) for p in sweep_dir.rglob("result.json")]
    assert sorted((r["lambda"], r["seed"]) for r in results) == [(0.2, 0), (0.2, 1), (0.8, 0), (0.8, 1)]
    assert all(r["status"] == "completed" and r["epochs_completed"] == 6 for r in results)


def block_metrics(job_dir):
    """A directory where the job must write metrics.csv: a real failure (IsADirectoryError)
    at the end of its first epoch, from a config that passes every check."""
    (job_dir / "metrics.csv").mkdir(parents=True)


def test_a_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    block_metrics(sweep_dir / "lam0.8")
    proc = run_train(["-m", *TINY, "train.epochs=1", "lam=0.2,0.8", f"hydra.sweep.dir={sweep_dir}",
                      "hydra.sweep.subdir=lam${lam}"], check=False)
    assert proc.returncode != 0  # Hydra reports the failed job at the end...
    out = status_text(tmp_path, capsys)
    assert "2 jobs | 1 completed | 1 failed" in out, out  # ...after running the other one
    assert "failed      " in out and "IsADirectoryError" in out


def test_status_on_a_folder_without_sweeps_is_one_line(tmp_path):
    with pytest.raises(SystemExit) as e:
        status_main([str(tmp_path)])
    assert "no sweep folders" in str(e.value)


# its module-scoped fixture is built once: under pytest-xdist, this file runs on one worker
pytestmark = pytest.mark.xdist_group("sweeps")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """A real output folder: a finished 2-job sweep and two single runs (one completed, one failed)."""
    root = tmp_path_factory.mktemp("outputs")
    run_train(["-m", *TINY, "train.epochs=1", "lam=0.2,0.8", f"hydra.sweep.dir={root / 'sweep'}"])
    run_train([*TINY, "train.epochs=1", f"hydra.run.dir={root / 'runs' / 'ok'}"])
    block_metrics(root / "runs" / "bad")
    run_train([*TINY, "train.epochs=1", "lam=0.3", f"hydra.run.dir={root / 'runs' / 'bad'}"], check=False)
    return root


def test_status_reports_damaged_files_and_shows_the_healthy_rest(outputs, tmp_path, capsys):
    root = tmp_path / "outputs"
    shutil.copytree(outputs, root)
    # An empty overrides.yaml: the job is still found, from its result.json.
    next((root / "sweep").rglob(".hydra/overrides.yaml")).write_text("")
    out = status_text(root, capsys)
    assert f"{root / 'sweep'}: 2 jobs | 2 completed\n" in out and "missing" not in out, out

    real = (root / "sweep" / "multirun.yaml").read_text()
    for name, text in (("truncated", real[:len(real) // 2]), ("empty", ""), ("foreign", "services:\n  web: {}\n"),
                       ("binary", "\x00\x01hydra")):
        (root / name).mkdir()
        (root / name / "multirun.yaml").write_text(text)
    out = status_text(root, capsys)
    assert f"{root / 'sweep'}: 2 jobs | 2 completed\n" in out, out
    for name in ("truncated", "empty", "foreign", "binary"):
        lines = [line for line in out.splitlines() if str(root / name / "multirun.yaml") in line]
        assert len(lines) == 1 and lines[0].startswith("damaged: "), out
    assert "Traceback" not in out and "(single runs): 2 runs" in out


def test_status_shows_single_runs(outputs, capsys):
    out = status_text(outputs, capsys)
    assert f"{outputs / 'sweep'}: 2 jobs | 2 completed" in out, out
    assert f"{outputs} (single runs): 2 runs | 1 completed | 1 failed" in out, out
    assert "failed      " in out and "lam=0.3" in out and "IsADirectoryError" in out
    out = status_text(outputs / "runs", capsys)  # a folder of single runs only
    assert "(single runs): 2 runs | 1 completed | 1 failed" in out, out


def fake_job(job_dir, overrides, status="completed"):
    """A job folder as a finished job leaves it (its .hydra/overrides.yaml and result.json)."""
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job_dir / "result.json").write_text(json.dumps({"status": status, "time_seconds": 60, "overrides": overrides}))


def test_status_counts_the_job_folders_of_an_earlier_sweep_into_the_same_folder(tmp_path, capsys):
    """Two sweeps without a name both write into outputs/multirun/; multirun.yaml is the
    last one's. Every job folder there is accounted for."""
    sweep = tmp_path / "multirun"
    first = [[f"lam={lam}", f"seed={seed}"] for lam in (0.3, 0.5, 0.7) for seed in (0, 1)]
    last = [[f"lam={lam}", f"seed={seed}"] for lam in (0.2, 0.8) for seed in (0, 1)]
    for overrides in first + [last[0]]:  # the last one: a folder of an older name, same overrides
        fake_job(sweep / "old" / ",".join(overrides), overrides)
    time.sleep(0.01)
    for overrides in last:
        fake_job(sweep / ",".join(overrides), overrides)
    (sweep / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: ['lam=0.2,0.8', 'seed=0,1']\n")
    out = status_text(tmp_path, capsys)
    assert f"{sweep}: 4 jobs | 4 completed\n" in out, out
    assert f"{sweep} (not in its multirun.yaml: from an earlier sweep into this folder): 7 jobs | 7 completed" \
        in out, out


def test_status_counts_one_run_as_one_run(tmp_path, capsys):
    fake_job(tmp_path / "runs" / "a", ["lam=0.3"])
    out = status_text(tmp_path, capsys)
    assert f"{tmp_path} (single runs): 1 run | 1 completed\n" in out, out
