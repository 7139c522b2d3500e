"""Tests of the Hydra launcher ``local_gpus`` (hydra_plugins/dgl_launcher/).

CPU only: GPUs are faked (an explicit ``hydra.launcher.gpus`` list, which the
launcher trusts, or a fake ``nvidia-smi`` on PATH); what is checked is the
``CUDA_VISIBLE_DEVICES`` every job saw, its pid, and when it ran.

Most tests run a tiny Hydra app (written into tmp_path) as a subprocess with
``-m x=1,2,3,4 hydra/launcher=local_gpus``; every job writes ``start.json`` when
it starts and ``end.json`` when it ends into its own job dir.  The last class
runs Hydra's own launcher test suite against the plugin, in process.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # so that Hydra finds hydra_plugins/dgl_launcher in process
    sys.path.insert(0, str(REPO))

from hydra.test_utils.launcher_common_tests import LauncherTestSuite

from hydra_plugins.dgl_launcher.local_gpus_launcher import (
    _ids_from_cuda_visible_devices,
    parse_gpu_ids,
    visible_gpus,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and prctl")

APP = r"""
import json, os, subprocess, sys, threading, time

import hydra
from hydra.core.hydra_config import HydraConfig


def _write(path, rec):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rec, f)
    os.replace(tmp, path)


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg):
    out = HydraConfig.get().runtime.output_dir
    rec = {
        "x": cfg.x,
        "pid": os.getpid(),
        "cvd": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "omp": os.environ.get("OMP_NUM_THREADS"),
        "start": time.time(),
        "child": None,
    }
    if cfg.spawn_child:
        rec["child"] = subprocess.Popen(["sleep", "120"]).pid
    _write(os.path.join(out, "start.json"), rec)
    if cfg.x == cfg.fail_x:
        raise ValueError(f"boom {cfg.x}")
    if cfg.x == cfg.exit_x:
        sys.exit(f"error: nope {cfg.x}")
    if cfg.x == cfg.exit0_x:
        sys.exit(0)
    time.sleep(cfg.long_sleep if cfg.x == cfg.long_x else cfg.sleep)
    rec["end"] = time.time()
    _write(os.path.join(out, "end.json"), rec)
    if cfg.linger:  # a non-daemon thread: the process cannot exit by itself
        threading.Thread(target=time.sleep, args=(600,)).start()
    return cfg.x * 10


if __name__ == "__main__":
    main()
"""

CONFIG = """\
x: 0
sleep: 1.0
long_x: -1
long_sleep: 0.0
fail_x: -1
exit_x: -1
exit0_x: -1
spawn_child: false
linger: false
"""

FAKE_NVIDIA_SMI = """#!/bin/sh
echo "GPU 0: Fake GPU (UUID: GPU-00000000-0000-0000-0000-000000000000)"
echo "GPU 1: Fake GPU (UUID: GPU-11111111-1111-1111-1111-111111111111)"
"""

XS = "x=1,2,3,4"


# --------------------------------------------------------------------- helpers
def _app(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text(CONFIG)
    (tmp_path / "my_app.py").write_text(APP)
    return tmp_path / "my_app.py"


def _env(cvd: str | None = "", path_prefix: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env.pop("HYDRA_FULL_ERROR", None)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    if cvd is not None:
        env["CUDA_VISIBLE_DEVICES"] = cvd
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env.get('PATH', '')}"
    return env


def _cmd(app: Path, sweep_dir: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        str(app),
        "-m",
        *([] if any(o.startswith("x=") for o in overrides) else [XS]),
        "hydra/launcher=local_gpus",
        f"hydra.sweep.dir={sweep_dir}",
        *overrides,
    ]


def _run(
    tmp_path: Path, *overrides: str, **env_kw: Any
) -> tuple[subprocess.CompletedProcess, Path]:
    app = _app(tmp_path)
    sweep = tmp_path / "multirun"
    proc = subprocess.run(
        _cmd(app, sweep, *overrides),
        cwd=tmp_path,
        env=_env(**env_kw),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc, sweep


def _records(sweep: Path, name: str = "end.json") -> dict[int, dict[str, Any]]:
    recs = {}
    for f in sweep.glob(f"*/{name}"):
        rec = json.loads(f.read_text())
        recs[rec["x"]] = rec
    return recs


def _max_overlap(recs: list[dict[str, Any]]) -> int:
    events = sorted(
        [(r["start"], 1) for r in recs] + [(r["end"], -1) for r in recs],
        key=lambda e: (e[0], e[1]),  # an end before a start at the same instant
    )
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def _alive(pid: int) -> bool:
    """True while pid runs (a zombie left for an init that does not reap counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait_for(pred: Any, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def _check_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


# ------------------------------------------------------------ unit: GPU ids
def test_parse_gpu_ids() -> None:
    assert parse_gpu_ids([0, 1]) == ["0", "1"]
    assert parse_gpu_ids("2,3") == ["2", "3"]
    assert parse_gpu_ids([]) == []
    assert parse_gpu_ids(["GPU-abc"]) == ["GPU-abc"]
    with pytest.raises(TypeError, match="ambiguous"):
        parse_gpu_ids(2)
    with pytest.raises(ValueError, match="duplicates"):
        parse_gpu_ids([0, 0])


def test_visible_gpus_reads_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert visible_gpus() == ["3", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    assert _ids_from_cuda_visible_devices("0,-1,2") == ["0"]
    assert _ids_from_cuda_visible_devices("-1") == []


def test_plugin_is_discovered() -> None:
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher

    names = [p.__name__ for p in Plugins.instance().discover(Launcher)]
    assert "LocalGpusLauncher" in names
    assert "local_gpus.yaml" in ConfigStore.instance().list("hydra/launcher")


# ------------------------------------------------------------- CPU, 2 at a time
@pytest.mark.parametrize("reuse", [True, False])
def test_cpu_jobs_run_two_at_a_time_in_warm_workers_or_fresh_processes(tmp_path: Path, reuse: bool) -> None:
    proc, sweep = _run(tmp_path, "hydra.launcher.cpu_jobs=2", "sleep=0.8",
                       f"hydra.launcher.reuse_workers={str(reuse).lower()}", cvd="")
    _check_ok(proc)
    recs = _records(sweep)
    assert sorted(recs) == [1, 2, 3, 4]
    pids = {r["pid"] for r in recs.values()}
    # warm workers: one process per slot runs job after job; else a process per job
    assert len(pids) == (2 if reuse else 4), recs
    assert os.getpid() not in pids
    assert all(r["cvd"] == "" for r in recs.values()), recs
    overlap = _max_overlap(list(recs.values()))
    assert overlap <= 2, f"cpu_jobs=2 but {overlap} jobs ran at once"
    assert overlap >= 2, "cpu_jobs=2 but the jobs never ran at the same time"
    log = proc.stdout + proc.stderr
    assert log.count(" start on CPU ") == 4, log
    assert log.count(" ok on CPU in ") == 4, log
    assert "4 jobs done, 4 ok, 0 failed" in log


@pytest.mark.parametrize("user_setting", [None, "3"])
def test_cpu_jobs_side_by_side_share_the_cores(tmp_path: Path, user_setting) -> None:
    env = _env(cvd="")
    env.pop("OMP_NUM_THREADS", None)
    if user_setting:
        env["OMP_NUM_THREADS"] = user_setting
    proc = subprocess.run(_cmd(_app(tmp_path), tmp_path / "multirun", "hydra.launcher.cpu_jobs=2"), cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    _check_ok(proc)
    want = user_setting or str(max(1, os.cpu_count() // 2))
    assert {r["omp"] for r in _records(tmp_path / "multirun").values()} == {want}


def test_slots_default_and_balance() -> None:
    from hydra_plugins.dgl_launcher.local_gpus_launcher import LocalGpusLauncher

    assert LocalGpusLauncher(gpus=[])._capacity() == {"": 1}  # cpu_jobs=1 by default
    cap = LocalGpusLauncher(gpus=[0, 1], jobs_per_gpu=2)._capacity()
    assert cap == {"0": 2, "1": 2}
    assert LocalGpusLauncher.slots(cap) == ["0", "1", "0", "1"]  # spread first, then stack


def test_code_sent_by_value_keeps_its_file_name() -> None:
    """A function of the main script travels by value; its traceback in the worker must
    still name the script and line (cloudpickle >= 3.1 alone writes <dynamic-code>)."""
    import traceback

    import cloudpickle

    from hydra_plugins.dgl_launcher import _worker

    scope: dict[str, Any] = {"__name__": "__main__"}
    exec(compile("def task():\n    inner = lambda: 1 / 0\n    return inner()\n",  # noqa: S102
                 "/somewhere/my_app.py", "exec"), scope)
    task = cloudpickle.loads(_worker.dumps(scope["task"]))
    with pytest.raises(ZeroDivisionError) as e:
        task()
    tb = "".join(traceback.format_exception(e.value))
    assert 'my_app.py", line 3' in tb and 'my_app.py", line 2' in tb, tb


# ----------------------------------------------------------- (fake) GPUs
def test_explicit_gpu_list_jobs_per_gpu(tmp_path: Path) -> None:
    # No GPU here: the launcher must trust the explicit list, and override the
    # CUDA_VISIBLE_DEVICES="" it inherited.
    proc, sweep = _run(
        tmp_path,
        "hydra.launcher.gpus=[0,1]",
        "hydra.launcher.jobs_per_gpu=2",
        "sleep=1.5",
        cvd="",
    )
    _check_ok(proc)
    recs = _records(sweep)
    assert sorted(recs) == [1, 2, 3, 4]
    by_gpu: dict[str, list[dict[str, Any]]] = {}
    for r in recs.values():
        by_gpu.setdefault(r["cvd"], []).append(r)
    assert sorted(by_gpu) == ["0", "1"], by_gpu.keys()
    assert [len(by_gpu[g]) for g in ("0", "1")] == [2, 2]
    for g, rs in by_gpu.items():
        assert _max_overlap(rs) == 2, f"jobs_per_gpu=2 but GPU {g} ran its 2 jobs apart"
    assert len({r["pid"] for r in recs.values()}) == 4
    log = proc.stdout + proc.stderr
    assert log.count(" start on GPU 0 ") == 2 and log.count(" start on GPU 1 ") == 2, log


def test_gpus_from_nvidia_smi_next_job_starts_when_one_ends(tmp_path: Path) -> None:
    """2 GPUs found by (a fake) nvidia-smi, 1 job per GPU; job x=1 is long.

    Not in waves: x=2, x=3, x=4 run one after the other on GPU 1 while x=1
    still holds GPU 0.
    """
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
    (bindir / "nvidia-smi").chmod(0o755)
    proc, sweep = _run(
        tmp_path,
        "sleep=0.1",
        "long_x=1",
        "long_sleep=3.0",
        cvd=None,  # unset: discovery via nvidia-smi
        path_prefix=bindir,
    )
    _check_ok(proc)
    recs = _records(sweep)
    assert sorted(recs) == [1, 2, 3, 4]
    assert recs[1]["cvd"] == "0"
    assert [recs[x]["cvd"] for x in (2, 3, 4)] == ["1", "1", "1"]
    assert _max_overlap([recs[x] for x in (2, 3, 4)]) == 1
    assert recs[4]["start"] < recs[1]["end"], "x=4 waited for x=1: jobs ran in waves"


# ------------------------------------------------------------- failing job
def test_failing_or_lingering_jobs_do_not_stop_or_stall_the_sweep(tmp_path: Path) -> None:
    """x=3 raises, x=4 calls sys.exit("error: ..."), x=2 calls sys.exit(0), and x=1
    returns but leaves a non-daemon thread behind, so its process cannot exit by
    itself: the launcher must end it (exit_grace_s) and go on."""
    proc, sweep = _run(
        tmp_path,
        "hydra.launcher.cpu_jobs=2",
        "hydra.launcher.exit_grace_s=0.5",
        "sleep=0.3",
        "fail_x=3",
        "exit_x=4",
        "exit0_x=2",
        "linger=true",
        cvd="",
    )
    # Hydra's BasicSweeper reads every JobReturn.return_value after the launcher
    # returns: the first FAILED one re-raises its exception, Hydra prints it and exits 1.
    assert proc.returncode == 1, proc.stderr
    assert sorted(_records(sweep)) == [1]
    started = _records(sweep, "start.json")
    assert sorted(started) == [1, 2, 3, 4]
    err = proc.stderr
    assert "Error executing job with overrides: ['x=3'" in err, err
    assert "ValueError: boom 3" in err
    assert "my_app.py" in err, "the worker's traceback is shown"
    log = proc.stdout + proc.stderr
    assert "#1 ok on CPU" in log, "sys.exit(0) in a job is a success"
    assert "#2 FAILED on CPU" in log
    assert "#3 FAILED on CPU" in log and "SystemExit: error: nope 4" in log
    assert "4 jobs done, 2 ok, 2 failed (#2 #3)" in log
    assert log.count("process is still alive: SIGTERM") == 1, log
    assert _wait_for(lambda: not any(_alive(r["pid"]) for r in started.values()), 5)
    # the traceback also lands in the failed job's own log
    job_log = next(sweep.glob("2/*.log")).read_text()
    assert "boom 3" in job_log


# ------------------------------------------- the launcher dies / is interrupted
def _start_long_sweep(tmp_path: Path, out: Any) -> tuple[subprocess.Popen, Path]:
    app = _app(tmp_path)
    sweep = tmp_path / "multirun"
    proc = subprocess.Popen(
        _cmd(app, sweep, "hydra.launcher.cpu_jobs=2", "sleep=60", "spawn_child=true"),
        cwd=tmp_path,
        env=_env(cvd=""),
        stdout=out,
        stderr=subprocess.STDOUT,
        # A shell may start background jobs with SIGINT ignored; undo that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    return proc, sweep


def _stopped_cleanly(tmp_path: Path, proc: subprocess.Popen, sweep: Path, sig: int) -> str:
    try:
        assert _wait_for(lambda: len(_records(sweep, "start.json")) == 2, 20), (
            "the first two jobs did not start"
        )
        started = _records(sweep, "start.json")
        pids = [r["pid"] for r in started.values()] + [r["child"] for r in started.values()]
        assert all(_alive(p) for p in pids)
        os.kill(proc.pid, sig)
        proc.wait(timeout=20)
        gone = _wait_for(lambda: not any(_alive(p) for p in pids), 10)
        assert gone, f"still alive: {[p for p in pids if _alive(p)]}"
        time.sleep(0.5)  # nothing new may start
        assert sorted(_records(sweep, "start.json")) == sorted(started)
        assert _records(sweep) == {}
        return (tmp_path / "launcher.out").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for r in _records(sweep, "start.json").values():  # never leave sleepers behind
            for p in (r["pid"], r["child"]):
                if p and _alive(p):
                    os.kill(p, signal.SIGKILL)


def test_sigkill_of_launcher_kills_workers(tmp_path: Path) -> None:
    with open(tmp_path / "launcher.out", "w") as out:
        proc, sweep = _start_long_sweep(tmp_path, out)
        _stopped_cleanly(tmp_path, proc, sweep, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL


def test_ctrl_c_in_launcher_stops_workers(tmp_path: Path) -> None:
    with open(tmp_path / "launcher.out", "w") as out:
        proc, sweep = _start_long_sweep(tmp_path, out)
        log = _stopped_cleanly(tmp_path, proc, sweep, signal.SIGINT)
    assert proc.returncode != 0
    assert "KeyboardInterrupt: stopping 2 running job(s)" in log, log


# ------------------------------------------- Hydra's own launcher test suite
@pytest.fixture(autouse=True)
def _unspecified_hydra_version_base():
    """Other tests compose configs with version_base="1.3", which Hydra keeps in a
    process-wide singleton; Hydra's suite expects the unspecified default (its jobs
    chdir into their folders). Reset it for the suite and restore it afterwards."""
    from hydra.version import _UNSPECIFIED_, VersionBase

    saved = VersionBase.instance().version_base
    VersionBase.instance().version_base = _UNSPECIFIED_
    yield
    VersionBase.instance().version_base = saved


@pytest.mark.parametrize(
    "launcher_name, overrides",
    [("local_gpus", ["hydra.launcher.gpus=[]", "hydra.launcher.cpu_jobs=2"])],
)
class TestHydraLauncherSuite(LauncherTestSuite):
    """A part of hydra.test_utils' launcher checks (overrides, configs, job dirs,
    a custom resolver reaching the workers, bad keys), with the launcher running
    inside pytest.  The other tests of the suite repeat these with other configs
    and cost ~3 s each, so they are left out."""

    test_sweep_1_job = None  # type: ignore[assignment]
    test_sweep_1_job_strict = None  # type: ignore[assignment]
    test_sweep_2_optimizers = None  # type: ignore[assignment]
    test_sweep_over_unspecified_mandatory_default = None  # type: ignore[assignment]
