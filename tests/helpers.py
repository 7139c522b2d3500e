"""Shared test helpers: compose the project's config in-process, run train.py for real."""

import os
import subprocess
import sys
from pathlib import Path

import dgl  # noqa: F401  (registers the schema and resolvers)
from dgl.config import compose as make_cfg  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
# A model and data small enough for a CPU test to train in about a second an epoch.
TINY = ["data=synthetic", "data.n_train=300", "data.n_test=200", "model.width=0.125",
        "train.batch_size=64", "train.device=cpu"]


def run_train(args, cwd=None, timeout=300, check=True):
    """Run `python train.py ARGS` as a user would; returns the CompletedProcess."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="0")
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=cwd or REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
