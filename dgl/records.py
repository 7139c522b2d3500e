"""What a run leaves on disk (see docs/RUN_RECORD.md). Every file is written to a
temporary name in the same folder and renamed into place, so a reader (or a crash)
never sees half a file."""

import copy
import csv
import fcntl
import io
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

RESULT, METRICS, LABELS, CONFIG, CHECKPOINT, LOCK = (
    "result.json", "metrics.csv", "labels.npz", "config.yaml", "checkpoint.pt", ".lock")
FINAL_STATUSES = ("completed", "diverged")  # a rerun leaves these alone; `failed` is retried


def atomic_write(path, write):
    """Call write(file_object) on a temp file next to `path`, fsync, rename over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        # Name the file; torch's writer hides the OSError (e.g. a full disk) behind its own
        # "[enforce fail at inline_container.cc]", with the OSError as the context.
        cause = e if isinstance(e, OSError) else e.__context__
        if isinstance(cause, OSError) and cause.errno is not None and cause.filename is None:
            raise OSError(cause.errno, cause.strerror, str(path)) from e
        raise


def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def write_json(path, obj):
    write_text(path, json.dumps(_json_safe(obj), indent=2) + "\n")


def write_text(path, text):
    atomic_write(path, lambda f: f.write(text.encode()))


def write_csv(path, rows, fieldnames):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def write_labels(path, clean, noisy):
    atomic_write(path, lambda f: np.savez(f, clean=clean, noisy=noisy))


def save_torch(path, obj):
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))


def to_cpu(obj):
    """A copy of obj (nested dicts/lists/tuples of tensors and plain values) in host memory."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return copy.deepcopy(obj)


class BackgroundSaver:
    """Writes one torch checkpoint at a time on a background thread, so a 100+ MB write
    (with fsync) overlaps the next epoch instead of stalling it. The caller snapshots the
    state to host memory first; save() waits for the previous write before starting."""

    def __init__(self):
        self.thread, self.error = None, None

    def _write(self, path, obj):
        try:
            save_torch(path, obj)
        except BaseException as e:  # surfaced by wait()
            self.error = e

    def save(self, path, obj):
        self.wait()
        self.thread = threading.Thread(target=self._write, args=(path, obj), daemon=True)
        self.thread.start()

    def settle(self):
        """Let a write under way finish, without raising its error (for a job that is already
        failing or interrupted): a daemon thread still inside torch.save when Python exits
        aborts the process ("terminate called without an active exception")."""
        if self.thread is not None:
            self.thread.join()

    def wait(self):
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error


def remove_stale_temp_files(run_dir):
    """Temp files left by a process killed mid-write (only the lock holder calls this)."""
    for tmp in Path(run_dir).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def read_result(run_dir):
    """The run's result.json as a dict, or None if there is none (or it is unreadable)."""
    try:
        return json.loads((Path(run_dir) / RESULT).read_text())
    except (OSError, ValueError):
        return None


def read_config(run_dir):
    """The config a job folder was started with, as a dict (its config.yaml); None for a
    folder no run has started in. An unreadable config.yaml makes the folder's contents
    unknown: ConfigError, so that nothing in it is resumed or reused."""
    import yaml

    from dgl.config import ConfigError

    path = Path(run_dir) / CONFIG
    if not path.exists():
        recorded = (read_result(run_dir) or {}).get("config")  # a folder from before config.yaml
        return recorded if isinstance(recorded, dict) else None
    try:
        recorded = yaml.safe_load(path.read_text())
        why = None if isinstance(recorded, dict) else "not a config"
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        why = str(e).splitlines()[0]
    if why:
        raise ConfigError(f"{path} is unreadable ({why}), so what its folder holds is unknown: "
                          f"nothing there is resumed or reused; move the folder away to run this job")
    return recorded


def run_result(config, overrides, status, progress=None, *, device_name=None, error=None, tb=None):
    """A run's result.json, for every status. config: the recorded config (dgl.identity.recorded);
    progress: the trainer's state (epoch, best_acc, elapsed, history, metrics), None for a
    run that failed before training."""
    from dgl.identity import fingerprint

    p = progress or {"epoch": 0, "best_acc": 0.0, "elapsed": 0.0, "metrics": [],
                     "history": {"epoch": [], "test_acc": [], "test_error": []}}
    accs, cosines = p["history"]["test_acc"], [r["cos_struct_value"] for r in p["metrics"]]
    final_acc = accs[-1] if accs and status == "completed" else None
    best_acc = p["best_acc"] if accs else None
    torch = sys.modules.get("torch")
    model, train = config["model"], config["train"]
    return {
        "status": status,
        "width_mult": float(model["width"]), "lr": float(config["lr"]),
        "noise_rate": float(config["noise"]["rate"]), "lambda": float(config["lam"]),
        "seed": int(config["seed"]),
        "test_acc": final_acc, "test_error": None if final_acc is None else 1 - final_acc,
        "best_acc": best_acc, "best_error": None if best_acc is None else 1 - best_acc,
        "avg_cos_struct_value": float(np.mean(cosines)) if cosines else None,
        "time_seconds": p["elapsed"], "history": p["history"],
        "model": model["name"], "dataset": config["data"]["name"], "noise": config["noise"]["name"],
        "epochs": int(train["epochs"]), "batch_size": int(train["batch_size"]),
        "value_every": int(train["value_every"]), "precision": train["precision"],
        "deterministic": train.get("deterministic"), "epochs_completed": p["epoch"],
        "code_version": code_version(), "torch_version": torch.__version__ if torch else None,
        "host": platform.node(), "device_name": device_name,
        "overrides": list(overrides), "config": config, "fingerprint": fingerprint(config),
        "error": error, "traceback": tb,
    }


def is_finished(run_dir):
    result = read_result(run_dir)
    return result is not None and result.get("status") in FINAL_STATUSES


class RunLock:
    """An flock on <run_dir>/.lock, held while a process trains in the folder, so two
    processes never train the same job and `dgl.status` can tell running from stalled.
    The kernel drops it when the process dies, however it dies."""

    def __init__(self, run_dir):
        self.path = Path(run_dir) / LOCK
        self.fd = None

    def acquire(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            return False
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()} {os.uname().nodename}\n".encode())
        return True

    def release(self):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def is_locked(run_dir):
    """True while some process holds the run's lock. Opens read-only; changes nothing."""
    path = Path(run_dir) / LOCK
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def code_version():
    """git:<short sha>[+dirty] of the checkout this package runs from, else the package version."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f"git:{sha}{'+dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        from dgl import __version__

        return f"dgl {__version__}"
