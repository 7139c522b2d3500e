"""A real sweep through hydra/launcher=slurm on a real single-node SLURM cluster
(scripts/slurm_cluster.sh), and a job preempted with USR2 that requeues and resumes."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dgl.status import main as status_main
from tests.helpers import REPO, TINY, run_train

# one real cluster per session: under pytest-xdist, both SLURM files go to one worker
pytestmark = pytest.mark.xdist_group("slurm")

def slurm_args(cluster):
    return ["hydra/launcher=slurm", f"hydra.launcher.partition={cluster.partition}",
            "hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1",
            f"hydra.launcher.mem_gb={min(2, cluster.max_mem_gb)}", "hydra.launcher.timeout_min=30"]


def all_text(folder):
    return "".join(p.read_text(errors="replace") for p in Path(folder).rglob("*")
                   if p.is_file() and p.suffix in (".log", ".out", ".err"))


def test_sweep_runs_on_slurm(slurm_cluster, tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    run_train(["-m", *TINY, "train.epochs=2", "lam=0.3,0.7", *slurm_args(slurm_cluster),
               f"hydra.sweep.dir={sweep_dir}"], timeout=600)
    results = [json.loads(p.read_text()) for p in sweep_dir.rglob("result.json")]
    assert sorted((r["status"], r["lambda"]) for r in results) == [("completed", 0.3), ("completed", 0.7)]
    assert any(sweep_dir.glob(".submitit/*/*_log.out"))  # really went through sbatch
    status_main([str(sweep_dir)])
    assert "2 jobs | 2 completed" in capsys.readouterr().out


def _job_ids(sweep_dir):
    return sorted(p.name for p in (sweep_dir / ".submitit").glob("[0-9]*"))


def test_usr2_preemption_requeues_and_resumes(slurm_cluster, tmp_path):
    sweep_dir = tmp_path / "sweep"
    epochs = 10
    cmd = [sys.executable, str(REPO / "train.py"), "-m", *TINY, f"train.epochs={epochs}", "lam=0.5",
           *slurm_args(slurm_cluster), f"hydra.sweep.dir={sweep_dir}"]
    launcher = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline = time.time() + 300
        while not list(sweep_dir.rglob("checkpoint.pt")):  # the job has finished an epoch or more
            assert time.time() < deadline and launcher.poll() is None, "job ended before preemption"
            time.sleep(0.2)
        (job_id,) = _job_ids(sweep_dir)
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True, timeout=60)
        # A requeued job waits ~120 s unless told to start now; keep telling it until it has.
        deadline = time.time() + 180
        while "resumed from" not in all_text(sweep_dir):
            assert time.time() < deadline, f"no resume:\n{all_text(sweep_dir)[-3000:]}\n{slurm_cluster.logs()}"
            time.sleep(2)
            subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], capture_output=True, check=False)
        out, _ = launcher.communicate(timeout=300)
        assert launcher.returncode == 0, out
    finally:
        if launcher.poll() is None:
            launcher.kill()
    (result_file,) = sweep_dir.rglob("result.json")
    result = json.loads(result_file.read_text())
    assert result["status"] == "completed" and result["epochs_completed"] == epochs
    text = all_text(sweep_dir)
    assert "preempted" in text or "timed-out" in text  # submitit saw the signal and requeued
    resumed_at = int(text.split("resumed from")[1].split("at epoch ")[1].split("/")[0])
    assert 1 <= resumed_at < epochs  # resumed from its checkpoint, not restarted
