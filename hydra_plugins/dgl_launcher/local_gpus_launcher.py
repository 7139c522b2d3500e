"""Hydra launcher ``local_gpus``: run a multirun sweep on ONE machine, spread over its GPUs.

    python train.py -m hydra/launcher=local_gpus hydra.launcher.jobs_per_gpu=2 seed=0,1,2,3

One worker process per slot (each GPU x ``jobs_per_gpu``, or ``cpu_jobs`` on the CPU), started
with ``CUDA_VISIBLE_DEVICES`` set to its GPU, runs job after job through Hydra's own ``run_job``;
every job's sweep config is composed here first and sent to its worker with cloudpickle. Why,
the options, how jobs are placed, and what happens when a job fails or Ctrl-C stops the sweep:
docs/LOCAL_LAUNCHER.md.
"""

import contextlib
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
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from . import _worker

log = logging.getLogger(__name__)

# Seconds between SIGTERM and SIGKILL when the launcher stops its workers.
STOP_GRACE_S = 10.0
CPU = ""  # the "device" of a worker without GPU: CUDA_VISIBLE_DEVICES=""


def parse_gpu_ids(value: Any) -> list[str]:
    """``[0, 1]`` / ``"0,1"`` / ``[]`` -> ``["0", "1"]`` / ``[]`` (verbatim ids)."""
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, int):  # bool is an int too
        raise TypeError(f"hydra.launcher.gpus={value!r} is ambiguous: give a list of GPU ids, "
                        f"e.g. gpus=[{value}] for GPU {value} only, or gpus=[0,1] for two GPUs")
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
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=60, check=False) if exe else None
    except (OSError, subprocess.SubprocessError):
        return None
    if out is None or out.returncode != 0:
        return None
    return len(re.findall(r"^GPU \d+:", out.stdout, flags=re.MULTILINE))


def _count_torch() -> int:
    # In a subprocess: the launcher itself must never initialise CUDA.
    try:
        out = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
                             capture_output=True, text=True, timeout=300, check=False)
        return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else 0
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return 0


def visible_gpus() -> list[str]:
    """GPU ids of this machine as CUDA would see them, without initialising CUDA here."""
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        return _ids_from_cuda_visible_devices(cvd)
    n = _count_nvidia_smi()
    return [str(i) for i in range(_count_torch() if n is None else n)]


def _where(device: str) -> str:
    return "CPU" if device == CPU else f"GPU {device}"


@dataclass
class _Job:
    pos: int  # index in job_overrides
    num: int  # hydra.job.num
    overrides: list[str]
    group: tuple[str, ...] = ()  # its shape (dgl.identity.shape)
    sweep_config: DictConfig | None = None
    payload: bytes = b""  # the sweep config as the worker receives it
    started: float = 0.0


@dataclass
class _Worker:
    slot: int
    device: str
    proc: Any
    conn: Any  # our end of a duplex pipe: jobs out, results in
    job: _Job | None = None  # the job it runs now
    group: tuple[str, ...] | None = None  # the shape of its last job
    jobs_done: int = 0
    retired_at: float | None = None  # told to exit (pipe closed); waiting for it to go
    hurried: int = 0  # after retiring: 0 nothing sent, 1 SIGTERM sent, 2 SIGKILL sent


class LocalGpusLauncher(Launcher):
    def __init__(self, jobs_per_gpu: int = 1, gpus: Any = None, cpu_jobs: int = 1, reuse_workers: bool = True,
                 start_method: str = "spawn", exit_grace_s: float = 60.0) -> None:
        super().__init__()
        if int(jobs_per_gpu) < 1:
            raise ValueError(f"hydra.launcher.jobs_per_gpu must be >= 1, got {jobs_per_gpu}")
        if int(cpu_jobs) < 1:
            raise ValueError(f"hydra.launcher.cpu_jobs must be >= 1, got {cpu_jobs}")
        if start_method not in multiprocessing.get_all_start_methods():
            raise ValueError(f"hydra.launcher.start_method={start_method!r} is not one of "
                             f"{multiprocessing.get_all_start_methods()}")
        self.jobs_per_gpu = int(jobs_per_gpu)
        self.gpus: list[str] | None = None if gpus is None else parse_gpu_ids(gpus)
        self.cpu_jobs = int(cpu_jobs)
        self.reuse_workers = bool(reuse_workers)
        self.start_method = start_method
        self.exit_grace_s = float(exit_grace_s)  # a worker that hangs on exit must not hold its slot
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def _capacity(self) -> dict[str, int]:
        gpus = self.gpus if self.gpus is not None else visible_gpus()
        return {g: self.jobs_per_gpu for g in gpus} if gpus else {CPU: self.cpu_jobs}

    @staticmethod
    def slots(capacity: dict[str, int]) -> list[str]:
        """The device of each worker slot, spread first: [0, 1, 0, 1] for 2 GPUs x 2."""
        return [d for k in range(max(capacity.values())) for d in capacity if k < capacity[d]]

    # ----------------------------------------------------------------- launch
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        assert self.hydra_context is not None and self.config is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        n = len(job_overrides)
        if n == 0:
            return []
        capacity = self._capacity()
        slots = self.slots(capacity)
        where = "the CPU (no GPU)" if CPU in capacity else (
            f"GPU {','.join(capacity)}, {self.jobs_per_gpu} per GPU")
        log.info(f"local_gpus: {n} jobs on {where}, {len(slots)} at a time, "
                 f"{'warm workers' if self.reuse_workers else 'a fresh process per job'}")
        for i, overrides in enumerate(job_overrides):
            log.info(f"\t#{initial_job_idx + i} : {' '.join(filter_overrides(overrides))}")
        try:
            common = _worker.dumps((self.hydra_context, self.task_function, Singleton.get_state()))
        except Exception as e:
            raise RuntimeError("local_gpus: cannot serialise the task function (or what it refers "
                               f"to) for the worker processes: {type(e).__name__}: {e}") from e

        ctx = multiprocessing.get_context(self.start_method)
        results: list[JobReturn | None] = [None] * n
        jobs = [_Job(i, initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        pending = [job for job in jobs if self._prepare(job, results)]
        workers: dict[int, _Worker] = {}
        try:
            while pending or workers:
                self._assign(ctx, common, slots, pending, workers)
                if not pending:  # nothing more to give: idle workers may go
                    for w in workers.values():
                        if w.job is None:
                            self._retire(w)
                if not workers:
                    continue
                waitables = [w.proc.sentinel for w in workers.values()]
                waitables += [w.conn for w in workers.values() if w.job is not None]
                ready = multiprocessing.connection.wait(waitables, timeout=self._hurry(workers.values()))
                for w in list(workers.values()):
                    if w.job is not None and w.conn in ready:
                        self._receive(w, results)
                    if w.proc.sentinel in ready:
                        w.proc.join()
                        if w.job is not None and not w.conn.closed and w.conn.poll(0):
                            self._receive(w, results)
                        if w.job is not None:
                            results[w.job.pos] = self._died(w)
                        w.conn.close()
                        del workers[w.slot]
        except BaseException as e:
            if workers:
                self._stop(list(workers.values()), type(e).__name__)
            raise

        failed = [r_i + initial_job_idx for r_i, r in enumerate(results)
                  if r is not None and r.status == JobStatus.FAILED]
        log.info(f"local_gpus: {n} jobs done, {n - len(failed)} ok, {len(failed)} failed"
                 + (f" ({' '.join(f'#{f}' for f in failed)})" if failed else ""))
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    # --------------------------------------------------------------- workers
    def _assign(self, ctx: Any, common: bytes, slots: list[str], pending: list[_Job],
                workers: dict[int, _Worker]) -> None:
        """Give pending jobs to free slots: an idle worker takes the next job of the shape
        it ran last, else the next job; the least busy GPU first."""
        while pending:
            free = [s for s in range(len(slots))
                    if s not in workers or (workers[s].job is None and workers[s].retired_at is None)]
            if not free:
                return
            busy = Counter(w.device for w in workers.values() if w.job is not None)
            free.sort(key=lambda s: (busy[slots[s]], s))
            slot, job = free[0], pending[0]
            for s in free:
                same = [j for j in pending if s in workers and j.group == workers[s].group]
                if same:
                    slot, job = s, same[0]
                    break
            pending.remove(job)
            w = workers.get(slot) or self._start_worker(ctx, common, slot, slots[slot])
            workers[slot] = w
            try:
                w.conn.send_bytes(job.payload)
            except OSError:  # the idle worker died: give the job to the next free slot
                pending.insert(0, job)
                self._retire(w)
                continue
            job.started = time.monotonic()
            w.job = job
            warm = f", its job {w.jobs_done + 1}" if self.reuse_workers else ""
            log.info(f"#{job.num} start on {_where(w.device)} (pid {w.proc.pid}{warm}): "
                     f"{' '.join(filter_overrides(job.overrides))}")

    def _prepare(self, job: _Job, results: list[JobReturn | None]) -> bool:
        """Compose the job's sweep config and its shape; False: FAILED already."""
        import cloudpickle
        from hydra.core.hydra_config import HydraConfig

        from dgl.identity import shape
        from dgl.preflight import sweep_job, task_config

        try:
            job.sweep_config = sweep_job(self.hydra_context, self.config, job.overrides, job.num)
            HydraConfig.instance().set_config(job.sweep_config)  # for ${hydra:...} in the job's config
            job.group = shape(task_config(job.sweep_config))
            job.payload = cloudpickle.dumps(job.sweep_config)
            return True
        except Exception as e:  # noqa: BLE001 - a job that cannot start is a FAILED job
            log.error(f"#{job.num} FAILED before start: {type(e).__name__}: {e} "
                      f"({' '.join(filter_overrides(job.overrides))})")
            ret = _worker.failed_return(None, e)
            ret.overrides = job.overrides
            results[job.pos] = ret
            return False

    def _worker_env(self, device: str) -> dict[str, str]:
        """What a worker's environment must say: its GPU, and for CPU jobs side by side a
        share of the cores (torch's default, a thread per core in every job, makes their
        spinning threads fight over the cores: several times slower). OMP_NUM_THREADS set
        by the user is kept."""
        env = {"CUDA_VISIBLE_DEVICES": device}
        if device == CPU and self.cpu_jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.cpu_jobs))
        return env

    def _start_worker(self, ctx: Any, common: bytes, slot: int, device: str) -> _Worker:
        ours, theirs = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_worker.worker_main, args=(common, device, theirs, os.getpid()),
                           name=f"local_gpus-worker{slot}", daemon=False)  # jobs may start processes
        # The worker's interpreter must start with its environment in place, before the
        # main script / torch is imported there.
        env = self._worker_env(device)
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            proc.start()
        finally:
            for k, v in old.items():
                if v is None:
                    del os.environ[k]
                else:
                    os.environ[k] = v
        theirs.close()  # EOF on `ours` once the worker is gone
        return _Worker(slot, device, proc, ours)

    def _retire(self, w: _Worker) -> None:
        """No more jobs for `w`: closing the pipe ends its loop, and the process exits."""
        if w.retired_at is None:
            w.conn.close()
            w.retired_at = time.monotonic()

    def _receive(self, w: _Worker, results: list[JobReturn | None]) -> None:
        try:
            data = w.conn.recv_bytes()
        except (EOFError, OSError):
            return  # the worker is going: its sentinel says so next
        job, w.job = w.job, None
        assert job is not None
        results[job.pos] = ret = self._result(w, job, data)
        w.group, w.jobs_done = job.group, w.jobs_done + 1
        if ret.status == JobStatus.FAILED or not self.reuse_workers:
            self._retire(w)  # a failed job's worker exits; a fresh one takes the slot

    def _result(self, w: _Worker, job: _Job, data: bytes) -> JobReturn:
        secs = time.monotonic() - job.started
        tb: str | None = None
        try:
            ret, tb = _worker.load_result(data)
        except Exception as e:  # noqa: BLE001 - e.g. a class missing here: FAILED job
            ret = _worker.failed_return(job.sweep_config, _worker.WorkerError(
                f"cannot unpickle the result of job #{job.num}: {type(e).__name__}: {e}"))
        if ret.status == JobStatus.FAILED:
            exc = ret._return_value
            if tb and isinstance(exc, BaseException):
                exc.__cause__ = _worker.RemoteTraceback(tb)
            log.error(f"#{job.num} FAILED on {_where(w.device)} after {secs:.1f} s: "
                      f"{type(exc).__name__}: {exc}")
        else:
            log.info(f"#{job.num} ok on {_where(w.device)} in {secs:.1f} s")
        return ret

    def _died(self, w: _Worker) -> JobReturn:
        assert w.job is not None
        code = w.proc.exitcode
        how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
        log.error(f"#{w.job.num} FAILED on {_where(w.device)}: its worker (pid {w.proc.pid}) "
                  f"died with {how}")
        return _worker.failed_return(w.job.sweep_config, _worker.WorkerError(
            f"worker of job #{w.job.num} (pid {w.proc.pid}, {_where(w.device)}) died with {how} "
            f"before returning a result (out of memory? killed? os._exit()?)"))

    def _hurry(self, workers: Any) -> float | None:
        """Signal retired workers that keep living (atexit hooks, a non-daemon thread);
        seconds to the next deadline."""
        now, next_in = time.monotonic(), None
        for w in workers:
            if w.retired_at is None:
                continue
            stages = ((signal.SIGTERM, w.retired_at + self.exit_grace_s),
                      (signal.SIGKILL, w.retired_at + self.exit_grace_s + STOP_GRACE_S))
            for stage, (sig, at) in enumerate(stages, start=1):
                if w.hurried >= stage:
                    continue
                if now < at:
                    next_in = at - now if next_in is None else min(next_in, at - now)
                    break
                log.warning(f"worker pid {w.proc.pid} ({_where(w.device)}) finished its jobs "
                            f"{now - w.retired_at:.0f} s ago but its process is still alive: "
                            f"{signal.Signals(sig).name}")
                _worker.signal_group(w.proc.pid, sig)
                w.hurried = stage
        return next_in

    def _stop(self, workers: list[_Worker], why: str) -> None:
        running = [w for w in workers if w.job is not None]
        nums = " ".join(f"#{w.job.num}" for w in running if w.job is not None)
        log.warning(f"local_gpus: {why}: stopping {len(running)} running job(s): {nums}")
        for w in workers:
            _worker.signal_group(w.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        with contextlib.suppress(KeyboardInterrupt):  # second Ctrl-C: no more waiting
            for w in workers:
                w.proc.join(max(0.0, deadline - time.monotonic()))
        for w in workers:
            if w.proc.is_alive():
                log.warning(f"worker pid {w.proc.pid} did not stop on SIGTERM: SIGKILL")
                _worker.signal_group(w.proc.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.killpg(w.proc.pid, signal.SIGKILL)  # leftovers of its group
        for w in workers:
            w.proc.join(5.0)
            w.conn.close()
