"""train.py as a user runs it: the files it leaves, reruns, bad input, divergence."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd

from tests.helpers import REPO, TINY, run_train
from tests.test_data import write_tiny_cifar


def test_synthetic_run_leaves_a_complete_record(tmp_path):
    run_dir = tmp_path / "run"
    run_train([*TINY, "train.epochs=3", "train.eval_every=2", "lam=0.5", "seed=2", f"hydra.run.dir={run_dir}"])
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed"
    for key in ("width_mult", "lr", "noise_rate", "lambda", "seed", "test_acc", "test_error", "best_acc",
                "best_error", "avg_cos_struct_value", "time_seconds", "history", "model", "dataset",
                "epochs", "code_version", "config"):
        assert key in result, key
    assert (result["lambda"], result["seed"], result["width_mult"]) == (0.5, 2, 0.125)
    assert result["history"]["epoch"] == [2, 3]  # every eval_every epochs and at the end
    assert result["best_acc"] == max(result["history"]["test_acc"])
    assert result["test_acc"] == result["history"]["test_acc"][-1]
    assert abs(result["best_error"] - (1 - result["best_acc"])) < 1e-12
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics.epoch) == [1, 2, 3] and metrics.test_acc.notna().tolist() == [False, True, True]
    assert np.isclose(metrics.cos_struct_value.mean(), result["avg_cos_struct_value"])
    labels = np.load(run_dir / "labels.npz")
    assert (labels["clean"] != labels["noisy"]).sum() == int(0.4 * 300)
    assert "lam: 0.5" in (run_dir / "config.yaml").read_text()
    assert not (run_dir / "checkpoint.pt").exists()

    # A rerun of a completed job does nothing and says so.
    before = (run_dir / "result.json").read_text()
    proc = run_train([*TINY, "train.epochs=3", "train.eval_every=2", "lam=0.5", "seed=2", f"hydra.run.dir={run_dir}"])
    assert "already completed, nothing to do" in proc.stdout + proc.stderr
    assert (run_dir / "result.json").read_text() == before


def test_tiny_cifar_folder_trains_end_to_end(tmp_path):
    write_tiny_cifar(tmp_path / "cifar", n_per_batch=30)
    run_dir = tmp_path / "run"
    run_train(["data=cifar10", f"data.root={tmp_path / 'cifar'}", "model.width=0.125", "train.epochs=1",
               "train.batch_size=50", "train.device=cpu", f"hydra.run.dir={run_dir}"])
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed" and result["dataset"] == "cifar10"


def test_nan_loss_ends_the_run_as_diverged(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_train([*TINY, "train.epochs=4", "lr=1e30", f"hydra.run.dir={run_dir}"])
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "diverged" and result["epochs_completed"] < 4, proc.stdout
    assert "status diverged" in proc.stdout + proc.stderr


def _train_cmd(run_dir, epochs):
    return [sys.executable, str(REPO / "train.py"), *TINY, f"train.epochs={epochs}", "train.eval_every=2",
            "train.precision=fp32", "seed=1", f"hydra.run.dir={run_dir}"]


def test_killed_run_resumes_to_the_same_result_bit_for_bit(tmp_path):
    epochs = 8
    reference = tmp_path / "reference"
    subprocess.run(_train_cmd(reference, epochs), check=True, capture_output=True, cwd=REPO)

    resumed = tmp_path / "resumed"
    proc = subprocess.Popen(_train_cmd(resumed, epochs), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (resumed / "metrics.csv").exists() or len((resumed / "metrics.csv").read_text().splitlines()) < 4:
        assert time.time() < deadline and proc.poll() is None, "run ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # 3 epochs done, the 4th under way
    proc.wait()
    assert not (resumed / "result.json").exists() and (resumed / "checkpoint.pt").exists()

    second = subprocess.run(_train_cmd(resumed, epochs), check=True, capture_output=True, text=True, cwd=REPO)
    assert "resumed from" in second.stdout + second.stderr

    ours = json.loads((resumed / "result.json").read_text())
    theirs = json.loads((reference / "result.json").read_text())
    for key in ("status", "history", "test_acc", "best_acc", "avg_cos_struct_value", "epochs_completed"):
        assert ours[key] == theirs[key], key
    columns = ["epoch", "lr", "loss_noisy", "loss_clean", "cos_struct_value", "test_acc"]
    pd.testing.assert_frame_equal(pd.read_csv(resumed / "metrics.csv")[columns],
                                  pd.read_csv(reference / "metrics.csv")[columns])
    assert not (resumed / "checkpoint.pt").exists()
