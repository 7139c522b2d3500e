"""train.deterministic in the record: a sweep never mixes kernel settings silently, and an
interrupted run made before the key existed is resumed only as it was run."""

import json
import signal
import subprocess
import sys
import time

import yaml

from tests.helpers import REPO, TINY, run_train

SWEEP = [*TINY, "train.epochs=1", "train.progress=false"]


def test_a_sweep_continued_with_other_kernels_says_so_and_status_counts_both(tmp_path):
    sweep = tmp_path / "sweep"
    run_train(["-m", *SWEEP, "seed=0,1", "train.deterministic=false", f"hydra.sweep.dir={sweep}"])
    proc = run_train(["-m", *SWEEP, "seed=0,1,2", f"hydra.sweep.dir={sweep}"])
    notes = [line for line in proc.stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 1, proc.stdout
    assert "2 finished runs" in notes[0] and "add train.deterministic=false" in notes[0]
    results = [json.loads(p.read_text()) for p in sweep.glob("*/result.json")]
    assert sorted(r["deterministic"] for r in results) == [False, False, True]

    status = subprocess.run([sys.executable, "-m", "dgl.status", str(sweep)], capture_output=True, text=True,
                            cwd=REPO, check=True).stdout
    assert "mixed kernels: 1 finished with train.deterministic=true, 2 with false" in status, status


def test_an_interrupted_run_from_before_the_key_is_resumed_only_as_it_was_run(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "train.py"), *TINY, "train.epochs=6", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics, deadline = run_dir / "metrics.csv", time.time() + 120
    while not metrics.exists() or len(metrics.read_text().splitlines()) < 3:
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    del config["train"]["deterministic"]  # as a run recorded before the key existed
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))

    refused = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode != 0 and len(lines) == 1, refused.stderr
    assert "interrupted run made with train.deterministic=false (recorded before the key existed)" in lines[0]
    assert "add train.deterministic=false" in lines[0]

    resumed = subprocess.run([*cmd, "train.deterministic=false"], cwd=REPO, capture_output=True, text=True,
                             check=True)
    assert "resumed from" in resumed.stdout
    assert json.loads((run_dir / "result.json").read_text())["epochs_completed"] == 6
