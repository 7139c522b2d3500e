"""Synthetic output trees with known ground truth, for tests/test_analysis.py.

Every cell's runs are drawn as ``mean + sd * z`` with ``z`` standardised to sample mean 0 and
sample std 1 (ddof=1), so each cell's mean and std are *exactly* the planted values and the
analyses' point estimates can be checked tightly; the bootstrap still sees real spread.

Each tree also holds the awkward cases: a corrupt ``result.json`` (binary junk), a
half-written one (truncated JSON), a failed run, a run in progress (``checkpoint.pt`` +
``.hydra/``, no result), a diverged run and a duplicate (the same config rerun into another
sweep folder: the older copy carries a wrong value, so keeping the wrong one is visible).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
from scipy.special import expit

Q1_LAMBDAS = {0.4: [0.42, 0.44, 0.46, 0.48, 0.50], 0.8: [0.38, 0.40, 0.42, 0.44, 0.46]}
Q1_WIDTHS = [0.5, 1.0, 2.0]
Q1_PEAK = {0.4: 0.46, 0.8: 0.42}  # planted peak / transition centre per noise rate
Q1_SEEDS = 10
Q3_LRS = [0.05, 0.1, 0.2]
Q3_LAMBDAS = [0.30, 0.35, 0.45, 0.50, 0.60]
Q3_SEEDS = 5
# noise 0.4: the error falls with lambda and the boundary moves with lr;
# noise 0.8: the error rises with lambda and the boundary is the same for every lr.
Q3_LAMBDA_C = {0.4: {0.05: 0.40, 0.1: 0.47, 0.2: 0.55}, 0.8: {0.05: 0.47, 0.1: 0.47, 0.2: 0.47}}
Q3_DIRECTION = {0.4: "falling", 0.8: "rising"}
OLD, NEW = 1_700_000_000, 1_700_100_000  # mtimes of the stale and fresh copy of a duplicate


def q1_peak_std(width: float) -> float:
    """Planted peak height: 0.04 * width ** 0.5 (log-log exponent +0.5)."""
    return 0.04 * width**0.5


def q1_sigmoid_width(width: float) -> float:
    """Planted transition width s: 0.016 * width ** -0.5 (log-log exponent -0.5)."""
    return 0.016 * width**-0.5


def q1_mean(lam, eta, width):
    """Error falls from 0.57 to 0.12 through a sigmoid centred on the planted peak."""
    return 0.57 + (0.12 - 0.57) * expit((np.asarray(lam) - Q1_PEAK[eta]) / q1_sigmoid_width(width))


def q1_std(lam, eta, width):
    g = np.exp(-((np.asarray(lam) - Q1_PEAK[eta]) ** 2) / (2 * 0.015**2))
    return q1_peak_std(width) * (0.2 + 0.8 * g)


def q3_mean(lam, eta, lr):
    lc = Q3_LAMBDA_C[eta][lr]
    d = (lc - lam) if Q3_DIRECTION[eta] == "falling" else (lam - lc)
    return float(np.clip(0.20 + 2.0 * d, 0.08, 0.9))


def exact_sample(rng, mean, sd, n):
    z = rng.standard_normal(n)
    z = (z - z.mean()) / z.std(ddof=1)
    return mean + sd * z


def config(*, width=1.0, model="resnet18", eta=0.4, lam=0.45, lr=0.1, seed=0, name="sweep"):
    return {
        "model": {"name": model, "width": width},
        "data": {"name": "cifar10", "root": f"/data/{name}", "download": True, "on_device": True},
        "noise": {"name": "symmetric", "rate": eta},
        "name": name,
        "lam": lam,
        "lr": lr,
        "seed": seed,
        "train": {
            "epochs": 100,
            "batch_size": 256,
            "value_every": 16,
            "eval_every": 10,
            "momentum": 0.9,
            "weight_decay": 5e-4,
            "milestones": [0.5, 0.75],
            "gamma": 0.1,
            "device": "auto",
            "precision": "auto",
            "compile": True,
            "cuda_graphs": True,
            "checkpoint_every": 1,
            "progress": True,
        },
    }


def record(cfg, best_error, *, status="completed", best_acc_known=True):
    best_acc = 1.0 - best_error if best_acc_known else None
    test_acc = None if status == "diverged" else best_acc - 0.003
    rec = {
        "status": status,
        "width_mult": cfg["model"]["width"],
        "lr": cfg["lr"],
        "noise_rate": cfg["noise"]["rate"],
        "lambda": cfg["lam"],
        "seed": cfg["seed"],
        "test_acc": test_acc,
        "test_error": None if test_acc is None else 1 - test_acc,
        "best_acc": best_acc,
        "best_error": None if best_acc is None else best_error,
        "avg_cos_struct_value": 0.3,
        "time_seconds": 60.0,
        "history": {
            "epoch": [10, 100],
            "test_acc": [0.5, best_acc],
            "test_error": [0.5, best_error],
        },
        "model": cfg["model"]["name"],
        "dataset": "cifar10",
        "noise": "symmetric",
        "epochs": 100,
        "batch_size": 256,
        "value_every": 16,
        "precision": "bf16",
        "epochs_completed": 100 if status == "completed" else 37,
        "code_version": "git:abc1234",
        "torch_version": "2.11.0",
        "device_name": "test",
        "overrides": [f"lam={cfg['lam']}", f"seed={cfg['seed']}"],
        "config": cfg,
        "error": None,
    }
    return rec


def job_name(cfg) -> str:
    return (
        f"lam={cfg['lam']},lr={cfg['lr']},model.width={cfg['model']['width']},"
        f"noise.rate={cfg['noise']['rate']},seed={cfg['seed']}"
    )


def write_run(root, sweep, rec, mtime=None) -> str:
    run_dir = os.path.join(root, sweep, job_name(rec["config"]))
    os.makedirs(os.path.join(run_dir, ".hydra"), exist_ok=True)
    path = os.path.join(run_dir, "result.json")
    with open(path, "w") as f:
        json.dump(rec, f, indent=2)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return run_dir


def add_awkward_runs(root, sweep, cfg_kwargs) -> dict:
    """The corrupt, half-written, failed and in-progress runs (configs outside the grid)."""
    paths = {}
    bad = os.path.join(root, sweep, "corrupt_job")
    os.makedirs(bad)
    with open(os.path.join(bad, "result.json"), "wb") as f:
        f.write(b"\x00\xff\xfe garbage \x80\x81")
    paths["corrupt"] = os.path.join(bad, "result.json")
    half = os.path.join(root, sweep, "half_written_job")
    os.makedirs(half)
    text = json.dumps(record(config(seed=91, **cfg_kwargs), 0.2), indent=2)
    with open(os.path.join(half, "result.json"), "w") as f:
        f.write(text[: len(text) // 2])
    paths["half_written"] = os.path.join(half, "result.json")
    failed = record(config(seed=92, **cfg_kwargs), 0.2, status="failed")
    failed["error"] = "RuntimeError: CUDA error: out of memory"
    paths["failed"] = write_run(root, sweep, failed)
    running = os.path.join(root, sweep, "running_job")
    os.makedirs(os.path.join(running, ".hydra"))
    open(os.path.join(running, "checkpoint.pt"), "wb").close()
    paths["in_progress"] = running
    return paths


def plant_q1(root) -> dict:
    """Q1 tree: two sweep folders (seeds 0-4 and 5-9) under ``root``.

    Missing cell: width 0.5, noise 0.8, lambda 0.38 (no runs). Diverged: width 1, noise 0.4,
    lambda 0.50, seed 3 (its best_acc was measured: value unchanged). Duplicate: width 2,
    noise 0.4, lambda 0.44, seed 0, rerun into ``rerun/`` (the stale copy says 0.99).
    """
    rng = np.random.default_rng(1234)
    truth = {"missing": (0.5, 0.8, 0.38), "diverged": None, "duplicate": None}
    for eta, lams in Q1_LAMBDAS.items():
        for width in Q1_WIDTHS:
            for lam in lams:
                if (width, eta, lam) == truth["missing"]:
                    continue
                ys = exact_sample(rng, q1_mean(lam, eta, width), q1_std(lam, eta, width), Q1_SEEDS)
                for seed, y in enumerate(ys):
                    sweep = "q1_a" if seed < 5 else "q1_b"
                    cfg = config(width=width, eta=eta, lam=lam, lr=0.1, seed=seed, name=sweep)
                    status = "completed"
                    if (width, eta, lam, seed) == (1.0, 0.4, 0.50, 3):
                        status = "diverged"
                    rec = record(cfg, float(y), status=status)
                    if (width, eta, lam, seed) == (2.0, 0.4, 0.44, 0):
                        stale = record(cfg, 0.99)
                        truth["duplicate"] = {
                            "stale": write_run(root, sweep, stale, mtime=OLD),
                            "fresh": write_run(
                                root,
                                "rerun",
                                record(
                                    config(
                                        width=width,
                                        eta=eta,
                                        lam=lam,
                                        lr=0.1,
                                        seed=seed,
                                        name="rerun",
                                    ),
                                    float(y),
                                ),
                                mtime=NEW,
                            ),
                        }
                        continue
                    d = write_run(root, sweep, rec)
                    if status == "diverged":
                        truth["diverged"] = d
    truth.update(add_awkward_runs(root, "q1_a", {"width": 1.0, "eta": 0.4, "lam": 0.46}))
    return truth


def plant_q3(root) -> dict:
    """Q3 tree under ``root/q3``: planted lambda_c per (noise, lr), see ``Q3_LAMBDA_C``.

    Missing cell: lr 0.2, noise 0.8, lambda 0.60. Diverged with nothing measured (counted at
    chance level 0.9): an extra seed 7 at lr 0.1, noise 0.4, lambda 0.30 (deep in the
    high-error phase). Duplicate: lr 0.05, noise 0.4, lambda 0.45, seed 1.
    """
    rng = np.random.default_rng(99)
    truth = {"missing": (0.2, 0.8, 0.60)}
    for eta in (0.4, 0.8):
        for lr in Q3_LRS:
            for lam in Q3_LAMBDAS:
                if (lr, eta, lam) == truth["missing"]:
                    continue
                ys = exact_sample(rng, q3_mean(lam, eta, lr), 0.02, Q3_SEEDS)
                for seed, y in enumerate(ys):
                    cfg = config(model="tv_resnet18", eta=eta, lam=lam, lr=lr, seed=seed, name="q3")
                    if (lr, eta, lam, seed) == (0.05, 0.4, 0.45, 1):
                        truth["duplicate"] = {
                            "stale": write_run(root, "q3", record(cfg, 0.01), mtime=OLD),
                            "fresh": write_run(
                                root,
                                "q3_rerun",
                                record(
                                    config(
                                        model="tv_resnet18",
                                        eta=eta,
                                        lam=lam,
                                        lr=lr,
                                        seed=seed,
                                        name="q3_rerun",
                                    ),
                                    float(y),
                                ),
                                mtime=NEW,
                            ),
                        }
                        continue
                    write_run(root, "q3", record(cfg, float(y)))
    div_cfg = config(model="tv_resnet18", eta=0.4, lam=0.30, lr=0.1, seed=7, name="q3")
    truth["diverged"] = write_run(
        root, "q3", record(div_cfg, 0.0, status="diverged", best_acc_known=False)
    )
    truth.update(add_awkward_runs(root, "q3", {"model": "tv_resnet18", "eta": 0.4, "lam": 0.45}))
    return truth


# --------------------------------------------------------------------------- coarse and pooled trees

COARSE_GRID = [0.40, 0.45, 0.55, 0.60, 0.70]


def coarse_mean(lam):
    """The issue's example: a sharp transition at 0.52 whose 0.20 crossing (0.4992) lies
    between the grid points 0.45 and 0.55."""
    return 0.1 + 0.5 * expit((np.asarray(lam) - 0.52) / 0.015)


COARSE_CROSSING = 0.52 + 0.015 * math.log(0.1 / 0.4)  # where coarse_mean = 0.20


def plant_coarse(root, seeds=5, noise=0.01, lrs=(0.1,)) -> None:
    """One curve per lr on the coarse grid, plain Gaussian seed noise (not standardised)."""
    rng = np.random.default_rng(7)
    for lr in lrs:
        for lam in COARSE_GRID:
            for seed in range(seeds):
                y = float(coarse_mean(lam) + noise * rng.standard_normal())
                rec = record(config(model="tv_resnet18", lam=lam, lr=lr, seed=seed, name="coarse"), y)
                rec["overrides"] = ["model=tv_resnet18", f"lr={lr}", f"lam={lam}", f"seed={seed}"]
                write_run(root, "coarse", rec)


def notebook_q1_records(seeds=3) -> list[dict]:
    """Q1 records exactly as the notebook's main loop builds them (planted Q1 truth)."""
    rng, results, run_num = np.random.default_rng(5), [], 0
    for width in Q1_WIDTHS:
        for eta, lambdas in Q1_LAMBDAS.items():
            for lam in lambdas:
                ys = exact_sample(rng, q1_mean(lam, eta, width), q1_std(lam, eta, width), seeds)
                for seed in range(seeds):
                    run_num += 1
                    best_acc, final_acc = 1 - float(ys[seed]), 1 - float(ys[seed]) - 0.002
                    results.append({
                        "experiment_id": f"Q1-{run_num:03d}", "experiment": "exp_Q1_finite_size_scaling",
                        "width_mult": width, "noise_rate": eta, "lambda": lam, "seed": seed,
                        "test_acc": final_acc, "test_error": 1 - final_acc, "best_acc": best_acc,
                        "best_error": 1 - best_acc, "avg_cos_struct_value": np.float64(0.3), "time_seconds": 540.0,
                        "history": {"epoch": [10, 100], "test_acc": [0.5, final_acc], "test_error": [0.5, 1 - final_acc]},
                    })
    return results


def write_notebook_folder(root, records, exp="exp_Q1_finite_size_scaling", files=("checkpoint", "results", "csv")) -> str:
    """A Colab SAVE_DIR as the notebook leaves it: config, checkpoint, results JSON and CSV."""
    import pandas as pd

    save_dir = os.path.join(root, f"{exp}_20250101_120000")
    os.makedirs(os.path.join(save_dir, "figures"), exist_ok=True)
    config = {"experiment": exp, "description": "...", "parameters": {
        "width_mults": Q1_WIDTHS, "noise_lambda_map": Q1_LAMBDAS, "seeds": list(range(3)), "epochs": 100,
        "batch_size": 256, "lr": 0.1, "K": 16}, "total_runs": len(records)}
    with open(f"{save_dir}/{exp}_config.json", "w") as f:
        json.dump(config, f, indent=2)
    if "checkpoint" in files:
        with open(f"{save_dir}/{exp}_checkpoint.json", "w") as f:
            json.dump(records, f, indent=2)
    if "results" in files:
        with open(f"{save_dir}/{exp}_results.json", "w") as f:
            json.dump(records, f, indent=2)
    if "csv" in files:
        results_flat = [{k: v for k, v in r.items() if k != "history"} for r in records]
        pd.DataFrame(results_flat).to_csv(f"{save_dir}/{exp}_results.csv", index=False)
    return save_dir
