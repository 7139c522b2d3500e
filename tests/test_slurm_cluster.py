"""submitit jobs on the real local SLURM cluster (scripts/slurm_cluster.sh).

Skipped without Slurm installed unless DGL_REQUIRE_SLURM=1 (then: failure).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.slurm import SlurmCluster, require_slurm  # the slurm_cluster fixture is in conftest.py

try:
    import cloudpickle
    import submitit
    import submitit.helpers
except ImportError as exc:  # pragma: no cover - depends on the environment
    submitit = None
    _SUBMITIT_ERROR = exc

if submitit is not None:
    # The job process imports neither this module nor tests/: send the callables
    # below by value instead of as a `module.name` reference.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])



# one real cluster per session: under pytest-xdist, both SLURM files go to one worker
pytestmark = pytest.mark.xdist_group("slurm")

@pytest.fixture
def executor(slurm_cluster: SlurmCluster, tmp_path: Path):
    if submitit is None:
        require_slurm()  # fail under DGL_REQUIRE_SLURM, else go on to skip
        pytest.skip(f"submitit not importable: {_SUBMITIT_ERROR}")
    ex = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    # timeout_min >= 20: submitit treats USR2 as a time-out (not a preemption)
    # once a job has used min(80 %, timeout - 10 min) of its time.
    ex.update_parameters(
        slurm_partition=slurm_cluster.partition,
        timeout_min=30,
        mem_gb=1,
        cpus_per_task=1,
    )
    return ex


def _describe(job, cluster: SlurmCluster) -> str:
    parts = [f"job {job.job_id}"]
    for what in ("stdout", "stderr"):
        try:
            parts.append(f"--- {what}\n{getattr(job, what)()}")
        except Exception as exc:  # noqa: BLE001
            parts.append(f"--- {what}: {exc!r}")
    parts.append(_slurm("scontrol", "show", "job", job.job_id))
    parts.append(cluster.logs(lines=30))
    return "\n".join(parts)


def _slurm(*cmd: str) -> str:
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    return proc.stdout + proc.stderr


def _wait_result(job, cluster: SlurmCluster, timeout_s: float):
    """job.result(), but never waits past ``timeout_s`` (cancels the job then)."""
    deadline = time.monotonic() + timeout_s
    while not job.done(force_check=True):
        if time.monotonic() > deadline:
            info = _describe(job, cluster)
            subprocess.run(["scancel", job.job_id], check=False, capture_output=True, timeout=60)
            pytest.fail(f"job not done after {timeout_s} s\n{info}")
        time.sleep(1)
    try:
        return job.result()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"job failed: {exc!r}\n{_describe(job, cluster)}")


def _final_state(job, timeout_s: float = 60) -> str:
    """The job's state in accounting once it has left the running states.

    (``job.state`` answers from submitit's cache, which may predate the end.)
    """
    deadline = time.monotonic() + timeout_s
    while True:
        state = job.watcher.get_state(job.job_id, mode="force")
        if state not in ("UNKNOWN", "PENDING", "RUNNING", "COMPLETING", "REQUEUED", "CONFIGURING"):
            return state
        if time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def _job_fields(job_id: str) -> dict[str, str]:
    out = _slurm("scontrol", "show", "job", "-o", job_id)
    return dict(tok.split("=", 1) for tok in out.split() if "=" in tok)


# --------------------------------------------------------------------------- jobs


def add(a: int, b: int) -> dict:
    import os
    import socket

    return {"sum": a + b, "host": socket.gethostname(), "job_id": os.environ.get("SLURM_JOB_ID")}


class SlowCounter(submitit.helpers.Checkpointable if submitit else object):
    """Counts to ``steps`` in ``step_s`` sleeps, writing progress to files.

    Its progress (``self.count``) lives in the object, which submitit pickles
    in ``checkpoint()`` on USR2 and unpickles when the requeued job starts: a
    resumed run starts from where it was, a restarted one from 0.
    """

    def __init__(self, workdir: str, steps: int, step_s: float) -> None:
        self.workdir = workdir
        self.steps = steps
        self.step_s = step_s
        self.count = 0

    def __call__(self) -> dict:
        import os

        wd = Path(self.workdir)
        with open(wd / "starts.txt", "a") as f:  # one line per (re)start: progress seen then
            f.write(f"{self.count} {os.environ.get('SLURM_RESTART_COUNT', '0')}\n")
        while self.count < self.steps:
            time.sleep(self.step_s)
            self.count += 1
            (wd / "progress.tmp").write_text(str(self.count))
            (wd / "progress.tmp").replace(wd / "progress")
        starts = (wd / "starts.txt").read_text().split("\n")
        return {"count": self.count, "starts": [line.split() for line in starts if line]}

    def checkpoint(self, *args, **kwargs):
        with open(Path(self.workdir) / "checkpoints.txt", "a") as f:
            f.write(f"{self.count}\n")
        return super().checkpoint(*args, **kwargs)


# --------------------------------------------------------------------------- tests


def test_cluster_is_up(slurm_cluster: SlurmCluster) -> None:
    out = _slurm("sinfo", "-h", "-o", "%P %a %D %c %m")
    assert out.split()[0].rstrip("*") == slurm_cluster.partition, out
    sacct = subprocess.run(
        ["sacct", "-n", "-X"], check=False, capture_output=True, text=True, timeout=60
    )
    assert sacct.returncode == 0, sacct.stderr  # accounting works: submitit relies on it


def test_submitit_function_job(executor, slurm_cluster: SlurmCluster) -> None:
    job = executor.submit(add, 2, 3)
    result = _wait_result(job, slurm_cluster, timeout_s=180)
    assert result["sum"] == 5
    assert result["job_id"] == job.job_id
    assert _final_state(job) == "COMPLETED", _describe(job, slurm_cluster)


def test_usr2_checkpoints_requeues_and_resumes(
    executor, slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    workdir = tmp_path / "counter"
    workdir.mkdir()
    steps = 30
    job = executor.submit(SlowCounter(str(workdir), steps=steps, step_s=0.5))

    # Wait until it is running and has made some progress.
    deadline = time.monotonic() + 120
    progress = workdir / "progress"
    while not (progress.exists() and int(progress.read_text() or 0) >= 4):
        if time.monotonic() > deadline or job.done(force_check=True):
            pytest.fail(f"job did not start counting\n{_describe(job, slurm_cluster)}")
        time.sleep(0.5)

    # Preempt it the way a cluster does: USR2 to the job's steps. submitit
    # calls checkpoint() (pickles the counter) and `scontrol requeue`s the job.
    subprocess.run(
        ["scancel", "--signal=USR2", job.job_id], check=True, capture_output=True, timeout=60
    )

    # A requeued job only becomes eligible ~120 s later: make it start now.
    # The update is refused while the job is still completing the first run,
    # and does nothing when done in the same second as the requeue: retry
    # until the job itself records its second start (Slurm's own state is no
    # proof: Restarts=1 may show while the first run is still winding down).
    starts = workdir / "starts.txt"
    deadline = time.monotonic() + 60  # well before the ~120 s it would take unaided
    while len(starts.read_text().splitlines()) < 2:
        if job.done(force_check=True):
            pytest.fail(f"job ended without a second start\n{_describe(job, slurm_cluster)}")
        fields = _job_fields(job.job_id)
        state, restarts = fields.get("JobState"), int(fields.get("Restarts", "0"))
        if restarts >= 1 and state == "PENDING":
            time.sleep(1)
            subprocess.run(
                ["scontrol", "update", f"JobId={job.job_id}", "StartTime=now"],
                check=False,
                capture_output=True,
                timeout=60,
            )
        if time.monotonic() > deadline:
            pytest.fail(
                f"job not restarted (state={state}, restarts={restarts})\n"
                f"{_describe(job, slurm_cluster)}"
            )
        time.sleep(0.5)

    result = _wait_result(job, slurm_cluster, timeout_s=240)
    checkpoints = (workdir / "checkpoints.txt").read_text().split()
    assert result["count"] == steps
    assert len(checkpoints) == 1 and int(checkpoints[0]) >= 4, checkpoints
    # Two starts: the first at 0, the second resumed from the checkpointed count.
    assert [int(s[0]) for s in result["starts"]] == [0, int(checkpoints[0])], result
    assert result["starts"][1][1] == "1", result  # SLURM_RESTART_COUNT of the requeued run
    assert _final_state(job) == "COMPLETED", _describe(job, slurm_cluster)
