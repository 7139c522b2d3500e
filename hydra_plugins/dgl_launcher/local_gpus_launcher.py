"""Hydra launcher ``local_gpus``: run a multirun sweep on ONE machine, spread over its GPUs.

Why: hydra-submitit-launcher's ``submitit_local`` puts every job on the same GPU
(facebookresearch/hydra#2757) and starts the whole sweep at once (#964); the
basic launcher runs one job after the other in the launcher's own process.

Usage::

    python train.py -m hydra/launcher=local_gpus seed=0,1,2,3 model=a,b
    python train.py -m hydra/launcher=local_gpus hydra.launcher.jobs_per_gpu=4 seed=0,1,2,3
    python train.py -m hydra/launcher=local_gpus 'hydra.launcher.gpus=[0,1]' seed=0,1,2,3
    python train.py -m hydra/launcher=local_gpus hydra.launcher.cpu_jobs=2 seed=0,1,2,3  # no GPU

(or put ``override hydra/launcher: local_gpus`` in the defaults list of a config).
The plugin is found by Hydra through the ``hydra_plugins`` namespace package:
the repository root (the directory holding ``hydra_plugins/``) has to be on
``sys.path``, which it is when you run ``python train.py`` from the repo root,
or with ``PYTHONPATH=/path/to/repo``, or once the repo is pip-installed with
``hydra_plugins`` included as a namespace package.

Config (``hydra.launcher.*``):

* ``jobs_per_gpu`` (1): jobs sharing one GPU at a time.
* ``gpus`` (null): GPU ids, e.g. ``[0,1]`` or ``"0,1"``; written verbatim into the
  workers' ``CUDA_VISIBLE_DEVICES`` (so they are the ids CUDA sees in a process
  with no ``CUDA_VISIBLE_DEVICES``; UUIDs work).  An explicit list is trusted, not
  checked.  null: ``CUDA_VISIBLE_DEVICES`` of the launcher if set, else the count
  from ``nvidia-smi -L``, else ``torch.cuda.device_count()`` run in a subprocess
  (the launcher never initialises CUDA itself).  ``[]`` forces the CPU.
* ``cpu_jobs`` (1): jobs at a time when there is no GPU (``CUDA_VISIBLE_DEVICES=""``).
* ``exit_grace_s`` (60): seconds a worker may keep living after it sent its result
  (atexit hooks, a non-daemon thread) before it is SIGTERMed, then SIGKILLed
  ``STOP_GRACE_S`` later; the job still counts as ok.
* ``start_method`` ("spawn"): multiprocessing start method of the workers.  Keep
  "spawn"; "fork" works only while the launcher process has no threads/CUDA
  state to speak of, "forkserver" sets the GPU only inside the worker function.

How it works:

* Each job runs in a fresh worker process (one process per job, never reused),
  started with ``CUDA_VISIBLE_DEVICES`` already set to its GPU, so the job sees
  that one GPU as ``cuda:0``.  At most ``len(gpus) * jobs_per_gpu`` (or
  ``cpu_jobs``) jobs run at a time; the next job starts as soon as any job ends,
  on the GPU that has the fewest jobs running.
* The job runs through Hydra's own ``run_job`` exactly as BasicLauncher and
  hydra-submitit-launcher run it (``load_sweep_config``, ``hydra.job.id``/``num``,
  ``hydra.sweep.dir``/``subdir``, job logging, callbacks).  The sweep config is
  built in the launcher; hydra_context, the task function, the singleton state
  and the sweep config travel to the worker as cloudpickle bytes (the task
  function usually lives in ``__main__``, which plain pickle cannot send).
* A job that raises does not stop the sweep: its JobReturn has
  ``status=JobStatus.FAILED`` and the exception (with the worker's traceback as
  ``__cause__``; the traceback also goes to the job's ``.log``).  A worker that
  dies without an answer (OOM killer, segfault, ``os._exit``) gives a FAILED
  JobReturn too.  When the launcher returns, Hydra's BasicSweeper reads every
  ``return_value``: the first FAILED job makes it print "Error executing job with
  overrides: [...]" and the traceback, and the process exits with status 1 --
  after every job of the batch has run.  (With ``hydra.sweeper.max_batch_size``
  set, later batches are not started after a batch with a failure.)
* Workers die with the launcher: each one asks the kernel for SIGTERM when its
  parent dies (``prctl(PR_SET_PDEATHSIG)``, Linux), so even a SIGKILLed launcher
  leaves no training behind.  Each worker leads its own process group and, on
  SIGTERM, passes it to that group (dataloader workers, subprocesses of the job).
  Ctrl-C in the launcher SIGTERMs every running job, SIGKILLs what is left after
  ``STOP_GRACE_S`` seconds, starts nothing more and re-raises KeyboardInterrupt.
* One log line when each job starts (number, GPU, pid, overrides) and ends
  (ok/FAILED, seconds).  Returns the JobReturns in the order of ``job_overrides``.

What the task function must not do / know:

* The script must guard its entry point (``if __name__ == "__main__": main()``):
  "spawn" re-imports the main script in every worker, so top-level code runs
  once per job (keep it cheap; do not touch CUDA there).
* Its return value travels back by pickle: return floats/dicts, not models or
  CUDA tensors (a top-level tensor is moved to the CPU first; an unpicklable
  value becomes None with a warning on stderr).
* Do not choose a GPU (``cuda:1``, ``torch.cuda.set_device(1)``, resetting
  ``CUDA_VISIBLE_DEVICES``): a job sees exactly one GPU, ``cuda:0``.
* ``sys.exit()`` / ``sys.exit(0)`` inside a job counts as success (return value
  None); any other ``sys.exit(...)`` marks that job FAILED with
  ``WorkerError("job ended by SystemExit: ...")``.  Neither ends the sweep (under
  the basic launcher it would).
* Installing its own SIGTERM handler replaces the one that passes SIGTERM on to
  the job's children; such a handler must still end the process promptly.
* Workers are not daemonic, so jobs may start their own processes (DataLoader
  workers); stdin is /dev/null, stdout/stderr are the launcher's (interleaved:
  read each job's ``<job>.log`` in its sweep subdir).
"""

import logging
import multiprocessing
import multiprocessing.connection
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    setup_globals,
)
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from . import _worker

log = logging.getLogger(__name__)

# Seconds between SIGTERM and SIGKILL when the launcher stops its jobs (Ctrl-C).
STOP_GRACE_S = 10.0
CPU = ""  # the "device" of a job that runs without GPU: CUDA_VISIBLE_DEVICES=""


def parse_gpu_ids(value: Any) -> list[str]:
    """``[0, 1]`` / ``"0,1"`` / ``[]`` -> ``["0", "1"]`` / ``[]`` (verbatim ids)."""
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, int):  # bool is an int too
        raise TypeError(
            f"hydra.launcher.gpus={value!r} is ambiguous: give a list of GPU ids, "
            f"e.g. gpus=[{value}] for GPU {value} only, or gpus=[0,1] for two GPUs"
        )
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"hydra.launcher.gpus must be a list of GPU ids, got {value!r}")
    ids = [str(v).strip() for v in value]
    if len(set(ids)) != len(ids):
        raise ValueError(f"hydra.launcher.gpus has duplicates: {ids}")
    return ids


def _ids_from_cuda_visible_devices(cvd: str) -> list[str]:
    ids: list[str] = []
    for tok in cvd.split(","):
        tok = tok.strip()
        # CUDA stops at the first invalid entry; "-1" is the usual "no GPU".
        if not tok or re.fullmatch(r"-\d+", tok):
            break
        ids.append(tok)
    return ids


def _count_nvidia_smi() -> int | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return len(re.findall(r"^GPU \d+:", out.stdout, flags=re.MULTILINE))


def _count_torch() -> int:
    # In a subprocess: the launcher itself must never initialise CUDA.
    try:
        out = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else 0
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return 0


def visible_gpus() -> list[str]:
    """GPU ids of this machine as CUDA would see them, without initialising CUDA here."""
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        return _ids_from_cuda_visible_devices(cvd)
    n = _count_nvidia_smi()
    if n is None:
        n = _count_torch()
    return [str(i) for i in range(n)]


@dataclass
class _Running:
    pos: int  # index in job_overrides
    num: int  # hydra.job.num
    device: str
    proc: Any
    conn: Any  # read end of the result pipe
    sweep_config: DictConfig | None
    started: float
    data: bytes | None = None
    eof: bool = False
    result_at: float | None = None  # when data arrived
    hurried: int = 0  # after the result: 0 nothing sent, 1 SIGTERM sent, 2 SIGKILL sent


def _where(device: str) -> str:
    return "CPU" if device == CPU else f"GPU {device}"


class LocalGpusLauncher(Launcher):
    def __init__(
        self,
        jobs_per_gpu: int = 1,
        gpus: Any = None,
        cpu_jobs: int = 1,
        start_method: str = "spawn",
        exit_grace_s: float = 60.0,
    ) -> None:
        super().__init__()
        if int(jobs_per_gpu) < 1:
            raise ValueError(f"hydra.launcher.jobs_per_gpu must be >= 1, got {jobs_per_gpu}")
        if int(cpu_jobs) < 1:
            raise ValueError(f"hydra.launcher.cpu_jobs must be >= 1, got {cpu_jobs}")
        if start_method not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"hydra.launcher.start_method={start_method!r} is not one of "
                f"{multiprocessing.get_all_start_methods()}"
            )
        self.jobs_per_gpu = int(jobs_per_gpu)
        self.gpus: list[str] | None = None if gpus is None else parse_gpu_ids(gpus)
        self.cpu_jobs = int(cpu_jobs)
        self.start_method = start_method
        # A job that hangs on exit must not hold its GPU slot forever.
        self.exit_grace_s = float(exit_grace_s)
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self,
        *,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    # ------------------------------------------------------------------ slots
    def _capacity(self) -> dict[str, int]:
        gpus = self.gpus if self.gpus is not None else visible_gpus()
        if not gpus:
            return {CPU: self.cpu_jobs}
        return {g: self.jobs_per_gpu for g in gpus}

    @staticmethod
    def _free_device(capacity: dict[str, int], busy: dict[str, int]) -> str | None:
        free = [d for d in capacity if busy[d] < capacity[d]]
        if not free:
            return None
        return min(free, key=lambda d: busy[d])  # ties: first in the list

    # ----------------------------------------------------------------- launch
    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        import cloudpickle  # lazy: keeps Hydra's plugin scan fast

        setup_globals()
        assert self.hydra_context is not None
        assert self.config is not None
        assert self.task_function is not None

        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)

        n = len(job_overrides)
        if n == 0:
            return []
        capacity = self._capacity()
        at_once = sum(capacity.values())
        if CPU in capacity:
            log.info(f"local_gpus: {n} jobs on the CPU (no GPU), {at_once} at a time")
        else:
            log.info(
                f"local_gpus: {n} jobs on GPU {','.join(capacity)}, "
                f"{self.jobs_per_gpu} per GPU, {at_once} at a time"
            )
        for i, overrides in enumerate(job_overrides):
            log.info(f"\t#{initial_job_idx + i} : {' '.join(filter_overrides(overrides))}")

        try:
            common = cloudpickle.dumps(
                (self.hydra_context, self.task_function, Singleton.get_state())
            )
        except Exception as e:
            raise RuntimeError(
                "local_gpus: cannot serialise the task function (or what it refers "
                f"to) for the worker processes: {type(e).__name__}: {e}"
            ) from e

        ctx = multiprocessing.get_context(self.start_method)
        results: list[JobReturn | None] = [None] * n
        busy = {d: 0 for d in capacity}
        running: dict[int, _Running] = {}
        pending = list(range(n))
        pending.reverse()  # pop() from the end = job order

        try:
            while pending or running:
                while pending:
                    device = self._free_device(capacity, busy)
                    if device is None:
                        break
                    pos = pending.pop()
                    r = self._start(
                        ctx, common, pos, initial_job_idx + pos, job_overrides[pos], device, results
                    )
                    if r is not None:
                        running[pos] = r
                        busy[device] += 1
                if not running:
                    continue
                waitables: list[Any] = []
                for r in running.values():
                    waitables.append(r.proc.sentinel)
                    if r.data is None and not r.eof:
                        waitables.append(r.conn)
                ready = multiprocessing.connection.wait(
                    waitables, timeout=self._hurry_lingering(running.values())
                )
                for pos, r in list(running.items()):
                    if r.conn in ready:
                        self._read(r)
                    if r.proc.sentinel in ready:
                        r.proc.join()
                        if r.data is None and not r.eof and r.conn.poll(0):
                            self._read(r)
                        results[pos] = self._finish(r)
                        del running[pos]
                        busy[r.device] -= 1
        except BaseException as e:
            if running:
                self._stop(list(running.values()), type(e).__name__)
            raise

        failed = [
            initial_job_idx + i
            for i, r in enumerate(results)
            if r is not None and r.status == JobStatus.FAILED
        ]
        log.info(
            f"local_gpus: {n} jobs done, {n - len(failed)} ok, {len(failed)} failed"
            + (f" ({' '.join(f'#{f}' for f in failed)})" if failed else "")
        )
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------ job helpers
    def _start(
        self,
        ctx: Any,
        common: bytes,
        pos: int,
        num: int,
        overrides: Sequence[str],
        device: str,
        results: list[JobReturn | None],
    ) -> _Running | None:
        import cloudpickle

        assert self.hydra_context is not None and self.config is not None
        lst = " ".join(filter_overrides(overrides))
        try:
            sweep_config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides)
            )
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = num
                sweep_config.hydra.job.num = num
            job = cloudpickle.dumps((sweep_config, num))
        except Exception as e:  # noqa: BLE001 - a job that cannot start is a FAILED job
            log.error(f"#{num} FAILED before start: {type(e).__name__}: {e} ({lst})")
            ret = _worker.failed_return(None, e)
            ret.overrides = list(overrides)
            results[pos] = ret
            return None

        reader, writer = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_worker.worker_main,
            args=(common, job, device, writer, os.getpid()),
            name=f"local_gpus-job{num}",
            daemon=False,  # jobs may start processes of their own
        )
        # The worker's interpreter must start with its GPU in the environment,
        # before the main script / torch is imported there.
        old = os.environ.get("CUDA_VISIBLE_DEVICES")
        os.environ["CUDA_VISIBLE_DEVICES"] = device
        try:
            proc.start()
        finally:
            if old is None:
                del os.environ["CUDA_VISIBLE_DEVICES"]
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = old
        writer.close()  # ours; EOF on `reader` once the worker is gone
        log.info(f"#{num} start on {_where(device)} (pid {proc.pid}): {lst}")
        return _Running(pos, num, device, proc, reader, sweep_config, time.monotonic())

    @staticmethod
    def _read(r: _Running) -> None:
        try:
            r.data = r.conn.recv_bytes()
            r.result_at = time.monotonic()
        except (EOFError, OSError):
            r.eof = True

    def _hurry_lingering(self, running: Any) -> float | None:
        """Signal workers that keep living after their result; seconds to the next deadline."""
        now = time.monotonic()
        next_in: float | None = None
        for r in running:
            if r.result_at is None:
                continue
            stages = (
                (signal.SIGTERM, r.result_at + self.exit_grace_s),
                (signal.SIGKILL, r.result_at + self.exit_grace_s + STOP_GRACE_S),
            )
            for stage, (sig, at) in enumerate(stages, start=1):
                if r.hurried >= stage:
                    continue
                if now < at:
                    next_in = at - now if next_in is None else min(next_in, at - now)
                    break
                log.warning(
                    f"#{r.num} sent its result {now - r.result_at:.0f} s ago but its "
                    f"process is still alive: {signal.Signals(sig).name}"
                )
                self._signal(r, sig)
                r.hurried = stage
        return next_in

    def _finish(self, r: _Running) -> JobReturn:
        secs = time.monotonic() - r.started
        r.conn.close()
        tb: str | None = None
        if r.data is not None:
            try:
                ret, tb = _worker.load_result(r.data)
            except Exception as e:  # noqa: BLE001 - e.g. a class missing here: FAILED job
                ret = _worker.failed_return(
                    r.sweep_config,
                    _worker.WorkerError(
                        f"cannot unpickle the result of job #{r.num}: {type(e).__name__}: {e}"
                    ),
                )
        else:
            code = r.proc.exitcode
            how = (
                f"signal {signal.Signals(-code).name}"
                if code is not None and code < 0
                else f"exit code {code}"
            )
            ret = _worker.failed_return(
                r.sweep_config,
                _worker.WorkerError(
                    f"worker of job #{r.num} (pid {r.proc.pid}, {_where(r.device)}) "
                    f"died with {how} before returning a result "
                    f"(out of memory? killed? os._exit()?)"
                ),
            )
        if ret.status == JobStatus.FAILED:
            exc = ret._return_value
            if tb and isinstance(exc, BaseException):
                exc.__cause__ = _worker.RemoteTraceback(tb)
            log.error(
                f"#{r.num} FAILED on {_where(r.device)} after {secs:.1f} s: "
                f"{type(exc).__name__}: {exc}"
            )
        else:
            log.info(f"#{r.num} ok on {_where(r.device)} in {secs:.1f} s")
        return ret

    @staticmethod
    def _signal(r: _Running, sig: int) -> None:
        pid = r.proc.pid
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)  # the worker and the job's own children
                return
        except OSError:
            pass
        try:
            os.kill(pid, sig)
        except OSError:
            pass

    def _stop(self, running: list[_Running], why: str) -> None:
        nums = " ".join(f"#{r.num}" for r in running)
        log.warning(f"local_gpus: {why}: stopping {len(running)} running job(s): {nums}")
        for r in running:
            self._signal(r, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        try:
            for r in running:
                r.proc.join(max(0.0, deadline - time.monotonic()))
        except KeyboardInterrupt:  # second Ctrl-C: no more waiting
            pass
        for r in running:
            if r.proc.is_alive():
                log.warning(f"#{r.num} did not stop on SIGTERM: SIGKILL")
                self._signal(r, signal.SIGKILL)
            try:
                os.killpg(r.proc.pid, signal.SIGKILL)  # leftovers of its group
            except OSError:
                pass
        for r in running:
            r.proc.join(5.0)
            r.conn.close()
