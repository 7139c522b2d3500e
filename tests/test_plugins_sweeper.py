"""The `dgl` sweeper and the `list` and `local_gpus` launchers: job numbers, batches, the
shape that groups jobs on a warm worker, and how the plugins depend on each other."""

import ast
import json
import re

from hydra_plugins.dgl_launcher.list_launcher import ListLauncher
from tests.helpers import REPO, TINY, run_train

QUICK = [*TINY, "train.epochs=1"]
BY_NUMBER = "hydra.sweep.subdir=${hydra.job.num}"


def imports(module_file):
    tree = ast.parse(module_file.read_text())
    return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}


def test_the_sweeper_and_the_list_launcher_do_not_import_each_other():
    """The sweeper asks its launcher whether it checks the jobs itself (`checks_jobs`); the
    check both run is dgl.preflight's."""
    folder = REPO / "hydra_plugins" / "dgl_launcher"
    assert not {m for m in imports(folder / "sweeper.py") if m and m.startswith("hydra_plugins")}
    assert not {m for m in imports(folder / "list_launcher.py") if m and m.startswith("hydra_plugins")}
    assert ListLauncher.checks_jobs is True


def test_a_sweep_subdir_of_the_job_number_is_listed_and_checked(tmp_path):
    proc = run_train(["-m", *QUICK, "hydra/launcher=list", BY_NUMBER, "hydra.sweep.dir=sweep", "seed=0,1"],
                     cwd=tmp_path)
    assert "   0 missing" in proc.stdout and "  ->  sweep/0\n" in proc.stdout, proc.stdout
    assert "   1 missing" in proc.stdout and "  ->  sweep/1\n" in proc.stdout, proc.stdout
    # the check before a launch composes each job with its number too
    proc = run_train(["-m", *QUICK, BY_NUMBER, "lam=0.4,1.5"], cwd=tmp_path, check=False)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "job #1 (" in lines[0] and "lam=1.5): " in lines[0] and "allowed: [0, 1]" in lines[0], proc.stderr
    assert not (tmp_path / "outputs").exists()


def test_max_batch_size_launches_batch_after_batch_and_stops_after_a_failed_one(tmp_path):
    sweep = tmp_path / "sweep"
    (sweep / "1" / "metrics.csv").mkdir(parents=True)  # job #1 fails at the end of its first epoch
    proc = run_train(["-m", *QUICK, BY_NUMBER, f"hydra.sweep.dir={sweep}", "hydra.sweeper.max_batch_size=1",
                      "seed=0,1,2"], cwd=tmp_path, check=False)
    assert proc.returncode != 0
    results = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/result.json")}
    assert {n: (r["status"], r["seed"]) for n, r in results.items()} == {"0": ("completed", 0), "1": ("failed", 1)}
    assert not (sweep / "2").exists(), "the batch after a failed one was started"


def test_every_job_is_checked_before_the_first_batch(tmp_path):
    proc = run_train(["-m", *QUICK, "hydra.sweeper.max_batch_size=1", "lam=0.4,0.5,1.5"], cwd=tmp_path,
                     check=False)
    assert "job #2 (" in proc.stderr and "lam=1.5): " in proc.stderr and not (tmp_path / "outputs").exists(), proc.stderr


def test_local_gpus_gives_jobs_of_one_shape_to_the_same_worker(tmp_path):
    """The shape is the composed config's (dgl.identity.shape), whatever the overrides
    that make it: here train.deterministic, which changes the engine a worker keeps."""
    proc = run_train(["-m", *QUICK, "lam=0.3,0.6", "train.deterministic=true,false", "hydra/launcher=local_gpus",
                      "hydra.launcher.gpus=[]", "hydra.launcher.cpu_jobs=1", f"hydra.sweep.dir={tmp_path}"])
    started = [(re.search(r"lam=([\d.]+)", line)[1], re.search(r"deterministic=(\w+)", line)[1])
               for line in (proc.stdout + proc.stderr).splitlines() if " start on CPU " in line]
    assert started == [("0.3", "True"), ("0.6", "True"), ("0.3", "False"), ("0.6", "False")], proc.stderr
