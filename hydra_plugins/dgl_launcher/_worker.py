"""Worker side of the ``local_gpus`` launcher: a process that runs Hydra jobs one after another.

The leading underscore keeps Hydra's plugin scanner from importing this module.
Nothing here may import torch (or anything that could initialise CUDA) at module
level: ``CUDA_VISIBLE_DEVICES`` must be in place before user code is imported,
which happens when the task function is unpickled inside :func:`worker_main`.
"""

import contextlib
import functools
import os
import signal
import sys
import traceback
from typing import Any

PR_SET_PDEATHSIG = 1


class RemoteTraceback(Exception):
    """A worker's formatted traceback, set as ``__cause__`` of the exception the launcher gets
    back, so that Hydra's traceback shows where the job failed (as ProcessPoolExecutor does)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


class WorkerError(RuntimeError):
    """Stands for an exception (or a result) that could not travel between processes."""


def dumps(obj: Any) -> bytes:
    """cloudpickle.dumps, keeping the file name of the code it pickles by value (the task
    function of ``__main__``): cloudpickle >= 3.1 writes ``<dynamic-code>`` instead, and a
    failed job's traceback would not name the user's file."""
    import io
    import types

    import cloudpickle

    class Pickler(cloudpickle.Pickler):
        def reducer_override(self, o: Any) -> Any:
            if isinstance(o, types.CodeType) and o.co_filename != _DYNAMIC:
                return _in_file, (o.replace(co_filename=_DYNAMIC), o.co_filename)
            return super().reducer_override(o)

    buf = io.BytesIO()
    Pickler(buf).dump(obj)
    return buf.getvalue()


_DYNAMIC = "<dynamic-code>"


def _in_file(code: Any, filename: str) -> Any:
    return code.replace(co_filename=filename)


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGTERM us when the launcher dies (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError) as e:  # pragma: no cover - exotic libc
            sys.stderr.write(f"[local_gpus worker] prctl(PR_SET_PDEATHSIG) failed: {e}\n")
    # The launcher may have died before prctl took effect.
    if os.getppid() != parent_pid:
        os._exit(143)


def signal_group(pid: int, sig: int) -> None:
    """Signal `pid`: its whole process group where it leads one (a worker and its job's children:
    dataloader workers, subprocesses), else the process alone."""
    with contextlib.suppress(OSError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
            return
    with contextlib.suppress(OSError):
        os.kill(pid, sig)


def _on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM (launcher gone, Ctrl-C in the launcher): take the job's children along, and
    (SIGTERM being back to its default) ourselves."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        signal_group(os.getpid(), signal.SIGTERM)
    finally:
        os._exit(128 + signum)


def failed_return(sweep_config: Any, exc: BaseException) -> Any:
    """A FAILED JobReturn for a job that did not get through ``run_job``."""
    import copy

    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import OmegaConf, open_dict, read_write

    ret = JobReturn(status=JobStatus.FAILED, _return_value=exc)
    if sweep_config is not None:
        try:
            ret.overrides = list(sweep_config.hydra.overrides.task)
            ret.hydra_cfg = OmegaConf.create({"hydra": copy.deepcopy(sweep_config.hydra)})
            task_cfg = copy.deepcopy(sweep_config)
            with read_write(task_cfg), open_dict(task_cfg):
                del task_cfg["hydra"]
            ret.cfg = task_cfg
        except Exception as e:  # noqa: BLE001 - best effort: overrides/cfg are extras here
            sys.stderr.write(f"[local_gpus worker] cannot attach the job's config: {e!r}\n")
    return ret


def _portable_exception(exc: BaseException) -> BaseException:
    """``exc`` if it survives a pickle round trip, else a WorkerError that describes it."""
    import cloudpickle

    if not isinstance(exc, Exception):
        # SystemExit / KeyboardInterrupt raised by the job: do not let Hydra re-raise
        # them as such in the launcher (sys.exit(2) in one job would end the multirun).
        return WorkerError(f"job ended by {type(exc).__name__}: {exc}")
    try:
        cloudpickle.loads(cloudpickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any pickling failure means "send a description"
        return WorkerError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")


def _cpu_value(value: Any) -> Any:
    """A torch tensor on the GPU would initialise CUDA in the launcher when unpickled."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().cpu()
    return value


def _dump_result(ret: Any, tb: str | None) -> bytes:
    import cloudpickle
    from hydra.core.utils import JobStatus

    failed = ret.status == JobStatus.FAILED
    ret.return_value = (_portable_exception if failed else _cpu_value)(ret._return_value)
    try:
        return cloudpickle.dumps((ret, tb))
    except Exception as e:  # noqa: BLE001 - any pickling failure: send what can travel
        if ret.status == JobStatus.FAILED:
            ret.return_value = WorkerError(repr(ret._return_value))
        else:
            sys.stderr.write(f"[local_gpus worker] return value of the job cannot be pickled "
                             f"({type(e).__name__}: {e}); the launcher gets None instead.\n")
            ret.return_value = None
        return cloudpickle.dumps((ret, tb))


def _run_one(common: Any, job: bytes) -> tuple[Any, str | None]:
    """Run one job through Hydra's run_job; (JobReturn, formatted traceback or None)."""
    import cloudpickle
    from hydra.core.singleton import Singleton
    from hydra.core.utils import JobStatus, run_job, setup_globals

    sweep_config, tb = None, None
    try:
        hydra_context, task_function, singleton_state = common()
        sweep_config = cloudpickle.loads(job)
        Singleton.set_state(singleton_state)
        setup_globals()
        ret = run_job(hydra_context=hydra_context, task_function=task_function, config=sweep_config,
                      job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
        if ret.status == JobStatus.FAILED:
            exc = ret._return_value
            tb = "".join(traceback.format_exception(exc))
            import logging  # run_job configured the job's logging: this lands in its .log

            logging.getLogger(__name__).error("job failed:\n%s", tb.rstrip())
    except SystemExit as e:  # sys.exit() in the job: the basic launcher would end the sweep
        ret = failed_return(sweep_config, e)
        if e.code is None or e.code == 0:
            ret.status = JobStatus.COMPLETED
            ret.return_value = None
        else:
            tb = "".join(traceback.format_exception(e))
            sys.stderr.write(f"[local_gpus worker] job ended by SystemExit: {e}\n")
    except BaseException as e:  # noqa: BLE001 - outside the task function: report it
        tb = "".join(traceback.format_exception(e))
        sys.stderr.write(f"[local_gpus worker] job failed outside run_job:\n{tb}")
        ret = failed_return(sweep_config, e)
    return ret, tb


def worker_main(common: bytes, device: str, conn: Any, parent_pid: int) -> None:
    """Entry point of a worker process (target of ``multiprocessing.Process``).

    ``common`` = cloudpickle of (hydra_context, task_function, singleton_state),
    unpickled once, at the first job. Then, until the launcher closes the pipe:
    receive a job (cloudpickle of its sweep config), run it, send back the cloudpickle
    of (JobReturn, traceback or None). After a failed job the worker exits: the
    launcher starts a fresh one, so a failure never leaves state behind for the next job.
    """
    # 1. The GPU. With "spawn"/"fork" the launcher already put it in our environment
    #    before the interpreter started; with "forkserver" this is the first chance,
    #    and it is still before any user module is unpickled.
    os.environ["CUDA_VISIBLE_DEVICES"] = device
    # 2. Die with the launcher; lead a process group of our own so that a SIGTERM
    #    reaches the job's own children too.
    _die_with_parent(parent_pid)
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, _on_sigterm)

    import cloudpickle
    from hydra.core.utils import JobStatus

    common_state = functools.cache(lambda: cloudpickle.loads(common))  # unpickled at the first job

    while True:
        try:
            job = conn.recv_bytes()
        except (EOFError, OSError):  # the launcher has no more jobs for us
            break
        ret, tb = _run_one(common_state, job)
        sys.stdout.flush()
        sys.stderr.flush()
        conn.send_bytes(_dump_result(ret, tb))
        if ret.status == JobStatus.FAILED:
            break
    conn.close()


def load_result(data: bytes) -> tuple[Any, str | None]:
    import cloudpickle

    return cloudpickle.loads(data)
