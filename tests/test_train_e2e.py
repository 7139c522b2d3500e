"""train.py as a user runs it: the files it leaves, reruns, bad input, divergence."""

import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from tests.helpers import REPO, TINY, make_cfg, run_train
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


def _kill_after_3_epochs(run_dir, epochs, sig=signal.SIGKILL):
    """Start a real run, send `sig` once 3 epochs are done (the 4th under way); returns (stdout, stderr)."""
    proc = subprocess.Popen(_train_cmd(run_dir, epochs), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run_dir / "metrics.csv").exists() or len((run_dir / "metrics.csv").read_text().splitlines()) < 4:
        assert time.time() < deadline and proc.poll() is None, "run ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(sig)
    out = proc.communicate(timeout=60)
    assert not (run_dir / "result.json").exists() and (run_dir / "checkpoint.pt").exists()
    return out


def test_killed_run_resumes_to_the_same_result_bit_for_bit(tmp_path):
    epochs = 8
    reference = tmp_path / "reference"
    subprocess.run(_train_cmd(reference, epochs), check=True, capture_output=True, cwd=REPO)

    resumed = tmp_path / "resumed"
    _kill_after_3_epochs(resumed, epochs)

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


def test_truncated_checkpoint_is_named_set_aside_and_the_job_starts_over(tmp_path):
    run_dir, epochs = tmp_path / "run", 5
    _kill_after_3_epochs(run_dir, epochs)
    checkpoint = run_dir / "checkpoint.pt"
    truncated = checkpoint.read_bytes()[:checkpoint.stat().st_size // 2]  # as a full disk or a crash leaves it
    checkpoint.write_bytes(truncated)

    rerun = subprocess.run(_train_cmd(run_dir, epochs), capture_output=True, text=True, cwd=REPO, check=False)
    assert rerun.returncode == 0, rerun.stderr
    warning = [line for line in rerun.stdout.splitlines() if "unreadable checkpoint" in line]
    assert len(warning) == 1 and str(checkpoint) in warning[0] and "starting over from epoch 0" in warning[0]
    assert "resumed from" not in rerun.stdout
    assert (run_dir / "checkpoint.pt.corrupt").read_bytes() == truncated  # kept, never deleted
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed" and result["epochs_completed"] == epochs
    assert list(pd.read_csv(run_dir / "metrics.csv").epoch) == list(range(1, epochs + 1))


class _RunsCode:
    """A pickle that runs a shell command when it is loaded."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_holding_code_is_refused_not_run(tmp_path):
    """A checkpoint.pt placed in an interrupted run's folder (a shared or copied outputs
    folder) must not run code when the job resumes: it is set aside, and the run starts over."""
    import torch

    run_dir, epochs, marker = tmp_path / "run", 5, tmp_path / "pwned"
    _kill_after_3_epochs(run_dir, epochs)
    torch.save({"state": _RunsCode(marker)}, run_dir / "checkpoint.pt")

    rerun = subprocess.run(_train_cmd(run_dir, epochs), capture_output=True, text=True, cwd=REPO, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert not marker.exists()
    warning = [line for line in rerun.stdout.splitlines() if "unreadable checkpoint" in line]
    assert len(warning) == 1 and "starting over from epoch 0" in warning[0]
    assert (run_dir / "checkpoint.pt.corrupt").exists()
    assert json.loads((run_dir / "result.json").read_text())["epochs_completed"] == epochs


def test_an_unreadable_config_yaml_makes_the_folder_unknown(tmp_path):
    """A folder whose identity file cannot be read holds an unknown run: a job of another
    config (lam 0.9 here) must not resume the checkpoint it finds there (a lam 0.4 run's)."""
    run_dir, epochs = tmp_path / "run", 5
    _kill_after_3_epochs(run_dir, epochs)
    (run_dir / "config.yaml").write_bytes(b"\x00\xff{[")
    checkpoint = (run_dir / "checkpoint.pt").read_bytes()

    rerun = subprocess.run([*_train_cmd(run_dir, epochs), "lam=0.9"], capture_output=True, text=True,
                           cwd=REPO, check=False)
    lines = rerun.stderr.strip().splitlines()
    assert rerun.returncode != 0 and len(lines) == 1, rerun.stderr
    assert lines[0].startswith("error: ") and "config.yaml is unreadable" in lines[0]
    assert "nothing there is resumed or reused" in lines[0]
    assert (run_dir / "checkpoint.pt").read_bytes() == checkpoint and not (run_dir / "result.json").exists()


def test_a_finished_run_leaves_no_lock_and_logs_rounded_numbers(tmp_path):
    proc = run_train([*TINY, "train.epochs=1", f"hydra.run.dir={tmp_path}"])
    assert not (tmp_path / ".lock").exists()
    final = [line for line in proc.stdout.splitlines() if "best error" in line][0]
    assert re.search(r"best error \d\.\d{4} \| final error \d\.\d{4} \| mean cos [+-]\d\.\d{4} \|", final), final


@pytest.fixture
def small_filesystem(tmp_path):
    """A real 1 MB filesystem (tmpfs): too small for one checkpoint of the TINY model."""
    mount_point = tmp_path / "small_fs"
    mount_point.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {proc.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_full_disk_is_reported_as_such_with_the_file(small_filesystem):
    run_dir = small_filesystem / "run"
    proc = run_train([*TINY, "train.epochs=3", f"hydra.run.dir={run_dir}"], check=False)
    assert proc.returncode != 0
    error = json.loads((run_dir / "result.json").read_text())["error"]
    assert "No space left on device" in error and str(run_dir / "checkpoint.pt") in error, error
    assert "inline_container" not in error
    assert "No space left on device" in (run_dir / "train.log").read_text()
    assert not list(run_dir.glob(".*.tmp"))  # the partial checkpoint was removed


def test_ctrl_c_says_where_it_stopped_in_one_line_and_a_rerun_resumes(tmp_path):
    run_dir, epochs = tmp_path / "run", 8
    stdout, stderr = _kill_after_3_epochs(run_dir, epochs, signal.SIGINT)
    done = len((run_dir / "metrics.csv").read_text().splitlines()) - 1
    not_progress = [s for s in re.split(r"[\r\n]", stderr) if s.strip() and not re.match(r"epoch \d+/\d+: ", s)]
    assert "Traceback" not in stdout + stderr and not not_progress, stderr
    interrupted = [line for line in stdout.splitlines() if "interrupted" in line]
    assert len(interrupted) == 1 and f"interrupted in epoch {done + 1}/{epochs}" in interrupted[0], stdout
    assert "rerun the same command to resume" in interrupted[0] and interrupted[0] == stdout.strip().splitlines()[-1]

    rerun = subprocess.run(_train_cmd(run_dir, epochs), capture_output=True, text=True, cwd=REPO, check=True)
    assert "resumed from" in rerun.stdout
    assert json.loads((run_dir / "result.json").read_text())["epochs_completed"] == epochs


@pytest.mark.parametrize("progress", [True, False])
def test_a_slow_epoch_shows_its_progress_in_steps_unless_switched_off(tmp_path, capsys, monkeypatch, progress):
    from dgl import trainer

    monkeypatch.setattr(trainer, "PROGRESS_AFTER_S", 0)  # every epoch counts as slow
    trainer.train(make_cfg([*TINY, "train.epochs=2", f"train.progress={progress}"]), tmp_path)
    err = capsys.readouterr().err
    if progress:  # 300 images in batches of 64: 5 steps an epoch
        assert "epoch 1/2:" in err and "epoch 2/2:" in err and "/5 [" in err and "step/s" in err, err
    else:
        assert err == ""


def test_readme_cpu_smoke_command_learns(tmp_path):
    """The README's CPU smoke command, exactly as written there, ends well above chance (0.10)."""
    readme = (REPO / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python train.py data=synthetic model.width")]
    assert len(commands) == 1, commands
    run_train(commands[0].split()[2:], cwd=tmp_path)  # outputs/ lands in tmp_path
    (result_file,) = (tmp_path / "outputs" / "runs").glob("*/result.json")
    result = json.loads(result_file.read_text())
    assert result["status"] == "completed"
    assert result["test_acc"] > 0.3, result["history"]
