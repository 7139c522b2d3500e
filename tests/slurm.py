"""A real single-node SLURM cluster for tests (see scripts/slurm_cluster.sh).

Use from a test module or from tests/conftest.py::

    from tests.slurm import slurm_cluster  # noqa: F401  (a session-scoped fixture)

    def test_something(slurm_cluster):
        ...  # slurm_cluster.partition, slurm_cluster.env, os.environ["SLURM_CONF"]

or build one with another name/scope with ``make_slurm_cluster_fixture``.

The fixture starts a cluster in a fresh temporary folder, puts its variables
(``SLURM_CONF`` and friends) into ``os.environ`` for the session, so that
``sbatch``/``squeue`` run by submitit, and the jobs themselves (sbatch passes the
submitter's environment on), talk to it, and stops it at the end.

If ``DGL_SLURM_STATE_DIR`` is set, that cluster is used (started if it is not
running) and left running: the caller that set it owns it.

Without the Slurm binaries (or without root) the fixture skips, unless
``DGL_REQUIRE_SLURM`` is set to a true value (CI), where it fails instead.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "slurm_cluster.sh"

# What the script and the tests need on PATH (Debian 12: slurmctld slurmd
# slurm-client munge slurmdbd mariadb-server-core mariadb-client-core).
REQUIRED_BINARIES = (
    "slurmctld",
    "slurmd",
    "slurmdbd",
    "sbatch",
    "squeue",
    "scancel",
    "scontrol",
    "sinfo",
    "sacct",
    "sacctmgr",
    "munged",
    "mariadb",
    "mariadb-install-db",
)
START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 120


def slurm_required() -> bool:
    """True when CI demands a real cluster (``DGL_REQUIRE_SLURM`` set and not 0/false/no)."""
    return os.environ.get("DGL_REQUIRE_SLURM", "").strip().lower() not in ("", "0", "false", "no")


def missing_requirements() -> list[str]:
    """Why a cluster cannot be started here (empty list: it can)."""
    reasons = [f"{b} not on PATH" for b in REQUIRED_BINARIES if shutil.which(b) is None]
    if shutil.which("mariadbd") is None and shutil.which("mysqld") is None:
        reasons.append("mariadbd not on PATH")
    if reasons:
        reasons.append("install with `bash scripts/slurm_cluster.sh install` (root)")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        reasons.append("scripts/slurm_cluster.sh runs the daemons as root; not root")
    return reasons


def parse_exports(text: str) -> dict[str, str]:
    """``export K=V`` lines (as printed by the script) -> {K: V}."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export ") :].partition("=")
            env[key.strip()] = value.strip().strip("'\"")
    return env


def _run_script(*args: str, timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["bash", str(SCRIPT), *args],
        check=False,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"slurm_cluster.sh {' '.join(args)} failed (rc={proc.returncode})\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def start_cluster(state_dir: str | os.PathLike) -> dict[str, str]:
    """Start (or find running) the cluster in ``state_dir``; return its environment variables."""
    proc = _run_script("start", str(state_dir), timeout=START_TIMEOUT_S)
    env = parse_exports(proc.stdout)
    if "SLURM_CONF" not in env:
        raise RuntimeError(
            f"slurm_cluster.sh start printed no SLURM_CONF:\n{proc.stdout}\n{proc.stderr}"
        )
    return env


def stop_cluster(state_dir: str | os.PathLike) -> None:
    """Cancel the cluster's jobs and stop its daemons (no-op if none is running)."""
    _run_script("stop", str(state_dir), timeout=STOP_TIMEOUT_S)


def log_tail(state_dir: str | os.PathLike, lines: int = 40) -> str:
    """The last lines of each daemon's log, for failure messages."""
    out = []
    for log in sorted(Path(state_dir, "log").glob("*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"--- {log}\n" + "\n".join(text))
    return "\n".join(out)


@dataclasses.dataclass(frozen=True)
class SlurmCluster:
    state_dir: Path
    env: dict[str, str]

    @property
    def partition(self) -> str:
        return self.env["DGL_SLURM_PARTITION"]

    @property
    def max_mem_gb(self) -> int:
        """The most a job may ask for with ``mem_gb`` (the node's RealMemory)."""
        return int(self.env["DGL_SLURM_MAX_MEM_GB"])

    @property
    def cpus(self) -> int:
        return int(self.env["DGL_SLURM_CPUS"])

    def logs(self, lines: int = 40) -> str:
        return log_tail(self.state_dir, lines)


def require_slurm() -> None:
    """Skip (or, with ``DGL_REQUIRE_SLURM``, fail) when no cluster can be started."""
    reasons = missing_requirements()
    if not reasons:
        return
    msg = "no SLURM cluster possible here: " + "; ".join(reasons)
    if slurm_required():
        pytest.fail(msg + " (DGL_REQUIRE_SLURM is set, so this is a failure)", pytrace=False)
    pytest.skip(msg + " (set DGL_REQUIRE_SLURM=1 to make this a failure)")


def make_slurm_cluster_fixture(name: str = "slurm_cluster", scope: str = "session") -> Callable:
    """A pytest fixture that yields a running :class:`SlurmCluster`."""

    @pytest.fixture(scope=scope, name=name)
    def _slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
        require_slurm()
        external = os.environ.get("DGL_SLURM_STATE_DIR")
        state_dir = Path(external) if external else tmp_path_factory.mktemp("slurm", numbered=True)
        t0 = time.monotonic()
        env = start_cluster(state_dir)
        print(f"\nslurm cluster in {state_dir} up after {time.monotonic() - t0:.1f} s")
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield SlurmCluster(state_dir=Path(env["DGL_SLURM_STATE_DIR"]), env=env)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            if not external:
                stop_cluster(state_dir)

    return _slurm_cluster


slurm_cluster = make_slurm_cluster_fixture()
