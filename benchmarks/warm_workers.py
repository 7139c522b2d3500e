"""Per-job overhead of sweeps through `local_gpus`, with and without warm workers, and the
numbers that project the Q1 and Q3 sweeps on one GPU. One command, time-capped:

    OUT=/tmp/out python benchmarks/warm_workers.py            # on the GPU, < 9 minutes
    OUT=/tmp/out python benchmarks/warm_workers.py --smoke    # tiny, on the CPU, end to end

Data: random CIFAR-format pickled batches (50,000 train / 10,000 test) read as
`data=cifar10`: the compute of CIFAR-10 without a download. The compile cache starts empty
(a folder of this run), so the first job of each width compiles cold, as on a new machine.

Phases, each capped (a capped sweep is stopped with Ctrl-C; what finished is reported):
  warm_w0.5, warm_w1    8 sequential 10-epoch jobs through the launcher, reuse_workers=true
  steady                steady epoch of width 2 and tv_resnet18 (trainer in one process),
                        and the notebooks' loop at width 1 (ms/step)
  fresh_w0.5, fresh_w1  the same 8 jobs with reuse_workers=false (a process per job)
  share_w0.5            width 0.5, 2 jobs per GPU, warm workers (if time is left)
Per job (from the launcher's and the job's log lines): start -> model built ("engine:" line)
is the start-up overhead; first epoch minus the median later epoch is the first-epoch tax.
"""

import argparse
import json
import os
import pickle
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def write_cifar(root, n_train, n_test, seed=0):
    """Random CIFAR-10 in the on-disk format (5 train batches + test_batch)."""
    rng = np.random.RandomState(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    sizes = [n_train // 5] * 5 + [n_test]
    for name, n in zip([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], sizes):
        batch = {b"data": rng.randint(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": rng.randint(0, 10, n).tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)


def _time(line):
    m = STAMP.match(line)
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() if m else None


def run_capped(cmd, cap_s, env=None):
    """Run cmd; Ctrl-C it at cap_s seconds (the launcher then stops its workers).
    Returns (stdout+stderr, wall seconds, capped?)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=max(cap_s, 1))
        capped = False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        capped = True
    return out, time.perf_counter() - start, capped


def jobs_of(out, sweep_dir):
    """Per finished job: start-up seconds (launcher start line -> 'engine:' line), engine
    state, epoch seconds, launcher wall seconds."""
    starts, oks = {}, {}
    for line in out.splitlines():
        if m := re.search(r"#(\d+) start on .*?\(pid (\d+)", line):
            starts[int(m.group(1))] = _time(line)
        if m := re.search(r"#(\d+) ok on .* in ([\d.]+) s", line):
            oks[int(m.group(1))] = float(m.group(2))
    jobs = []
    for num in sorted(oks):
        job_dir = next((d for d in Path(sweep_dir).iterdir() if d.is_dir() and (d / ".hydra").exists()
                        and f"seed={num}" in d.name.split(",")), None)
        if job_dir is None or not (job_dir / "metrics.csv").exists():
            continue
        log = (job_dir / "train.log").read_text().splitlines()
        engine = next((ln for ln in log if "engine: " in ln), "")
        epochs = [float(row.split(",")[-1]) for row in (job_dir / "metrics.csv").read_text().splitlines()[1:]]
        steady = statistics.median(epochs[1:-1] or epochs[1:] or epochs)
        jobs.append({"job": num, "engine": engine.split("engine: ")[-1].split(" (")[0],
                     "startup_s": (_time(engine) - starts[num]) if engine and starts.get(num) else None,
                     "first_epoch_s": epochs[0], "steady_epoch_s": steady,
                     "first_epoch_tax_s": epochs[0] - steady, "last_epoch_s": epochs[-1],
                     "epochs": len(epochs), "job_wall_s": oks[num]})
    return jobs


def sweep_phase(name, width, n_jobs, epochs, reuse, cap_s, base, tmp, jobs_per_gpu=1):
    sweep_dir = tmp / name
    cmd = [sys.executable, str(REPO / "train.py"), "-m", *base, f"model.width={width}", f"train.epochs={epochs}",
           f"seed=range({n_jobs})", "hydra/launcher=local_gpus", f"hydra.launcher.reuse_workers={str(reuse).lower()}",
           f"hydra.launcher.jobs_per_gpu={jobs_per_gpu}", f"hydra.sweep.dir={sweep_dir}"]
    out, wall, capped = run_capped(cmd, cap_s)
    jobs = jobs_of(out, sweep_dir) if sweep_dir.exists() else []
    first, later = [j for j in jobs if j["engine"] == "new"], [j for j in jobs if j["engine"] != "new"]

    def mean(rows, key):
        values = [r[key] for r in rows if r[key] is not None]
        return statistics.mean(values) if values else None

    row = {"phase": name, "width": width, "reuse_workers": reuse, "jobs_per_gpu": jobs_per_gpu,
           "jobs_asked": n_jobs, "jobs_done": len(jobs), "capped": capped, "wall_s": wall,
           "wall_per_job_s": wall / len(jobs) if jobs else None,
           "wall_projected_all_s": wall / len(jobs) * n_jobs if jobs else None,
           "first_job": {"startup_s": mean(first, "startup_s"), "first_epoch_tax_s": mean(first, "first_epoch_tax_s")},
           "later_jobs": {"startup_s": mean(later, "startup_s"), "first_epoch_tax_s": mean(later, "first_epoch_tax_s")},
           "steady_epoch_s": mean(jobs, "steady_epoch_s"), "jobs": jobs}
    if not jobs:
        row["log_tail"] = out[-3000:]
    print(json.dumps({k: v for k, v in row.items() if k != "jobs"}), flush=True)
    return row


STEADY_CODE = """
import json, sys
sys.path.insert(0, {repo!r})
from benchmarks.bench import time_trainer

for name, width in {configs!r}:
    # a 100-epoch config, timed for a few: no lr milestone (and no graph recapture) among them
    first, steady, eval_s = time_trainer(name, width, {epochs}, ["train.epochs=100"], base={base!r})
    print(json.dumps(dict(model=name, width=width, first_epoch_s=first, steady_epoch_s=steady, eval_s=eval_s)),
          flush=True)
if {notebook!r}:
    from benchmarks.bench import time_notebook
    from dgl.data import make_synthetic
    ms = 1e3 * time_notebook("resnet18", 1.0, make_synthetic(50_000, 10_000), 40)
    print(json.dumps(dict(notebook_ms_step_w1=ms)), flush=True)
"""


def projections(rows, steady, overhead_fresh):
    """Q1 (100 jobs at each of widths 0.5, 1, 2; 100 epochs) and Q3 (150 tv_resnet18 jobs)
    on one GPU: per job, its start-up and first-epoch tax (as measured for the first and
    later jobs of a worker), 100 steady epochs and 10 evaluations."""
    by = {r["phase"]: r for r in rows}

    def per_job(epoch_s, eval_s, tax):
        return tax + 100 * epoch_s + 10 * eval_s

    def tax(row, which):
        part = row[which]
        return (part["startup_s"] or 0) + (part["first_epoch_tax_s"] or 0)

    out = {"note": "w2 and tv: steady epochs measured in one process; their per-job tax is w1's"}
    w1 = by.get("warm_w1")
    for label, which in (("warm", "later_jobs"), ("fresh", None)):
        total, detail = 0.0, {}
        for width, key in ((0.5, "w0.5"), (1.0, "w1"), (2.0, "w2")):
            warm = by.get(f"warm_{key}") or w1
            epoch_s = steady.get(key, {}).get("steady_epoch_s") or (warm or {}).get("steady_epoch_s")
            eval_s = steady.get(key, {}).get("eval_s", 0.0)
            if epoch_s is None or warm is None:
                continue
            t = tax(warm, which) if which else overhead_fresh.get(key, overhead_fresh.get("w1", 0.0))
            detail[key] = {"steady_epoch_s": epoch_s, "per_job_tax_s": t, "job_s": per_job(epoch_s, eval_s, t)}
            total += 100 * detail[key]["job_s"]
            if which:  # the worker's first job of the width compiles and captures
                total += tax(warm, "first_job") - t
        out[f"q1_{label}_1_per_gpu_h"] = total / 3600
        out[f"q1_{label}_detail"] = detail
        tv = steady.get("tv")
        if tv and w1:
            t = tax(w1, which) if which else overhead_fresh.get("w1", 0.0)
            out[f"q3_{label}_1_per_gpu_h"] = 150 * per_job(tv["steady_epoch_s"], tv["eval_s"], t) / 3600
    share, alone = by.get("share_w0.5"), by.get("warm_w0.5")
    if share and share["steady_epoch_s"] and alone and alone["steady_epoch_s"]:
        # two jobs at once: throughput relative to one, from their steady epochs
        gain = 2 * alone["steady_epoch_s"] / share["steady_epoch_s"]
        out["w0.5_two_per_gpu_throughput_gain"] = gain
        d = out.get("q1_warm_detail", {})
        if "w0.5" in d and gain > 1:
            out["q1_warm_best_h"] = out["q1_warm_1_per_gpu_h"] - 100 * d["w0.5"]["job_s"] * (1 - 1 / gain) / 3600
    if "notebook_ms_step_w1" in steady:
        out["notebook_q1_lower_bound_h"] = 300 * 100 * 196 * steady["notebook_ms_step_w1"] / 1e3 / 3600
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: checks the script end to end")
    ap.add_argument("--budget-s", type=float, default=510, help="wall-clock cap of the whole run")
    args = ap.parse_args()
    deadline = time.monotonic() + args.budget_s
    out_dir = Path(os.environ.get("OUT") or tempfile.mkdtemp())
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="warm_workers."))
    smoke = args.smoke
    n_train, n_test = (320, 64) if smoke else (50_000, 10_000)
    write_cifar(tmp / "cifar", n_train, n_test)
    widths = {"w0.5": 0.125, "w1": 0.25} if smoke else {"w0.5": 0.5, "w1": 1.0}
    n_jobs, epochs = (3, 2) if smoke else (8, 10)
    base = ["data=cifar10", f"data.root={tmp / 'cifar'}", "data.download=false", "train.progress=false",
            f"train.compile_cache={tmp / 'compile_cache'}", "train.eval_every=10"]
    if smoke:
        base += ["train.device=cpu", "train.batch_size=64", "hydra.launcher.gpus=[]"]

    def left():
        return deadline - time.monotonic()

    import torch  # versions for the record

    header = {"date": time.strftime("%Y-%m-%d %H:%M"), "torch": torch.__version__,
              "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", "smoke": smoke,
              "n_train": n_train, "epochs_per_job": epochs}
    print(json.dumps(header), flush=True)
    rows, steady, errors = [], {}, []
    # warm workers first: every sweep of the before/after pair must be in the record
    for key in ("w0.5", "w1"):
        rows.append(sweep_phase(f"warm_{key}", widths[key], n_jobs, epochs, True, min(150, left() - 240),
                                base, tmp))
    # steady epochs of width 2 and tv_resnet18 (and the notebooks' loop), one process
    configs = [("resnet18", 0.25)] if smoke else [("resnet18", 2.0), ("tv_resnet18", 1.0)]
    trainer_base = [o for o in base if not o.startswith("hydra.")]
    code = STEADY_CODE.format(repo=str(REPO), configs=configs, epochs=2 if smoke else 3, base=trainer_base,
                              notebook=not smoke)
    out, wall, capped = run_capped([sys.executable, "-c", code], min(110, left() - 130))
    for line in out.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if "notebook_ms_step_w1" in rec:
                steady.update(rec)
            else:
                steady["w2" if rec["model"] == "resnet18" else "tv"] = rec
    if capped or len([k for k in steady if k in ("w2", "tv")]) < 2:
        errors.append({"phase": "steady", "capped": capped, "wall_s": wall, "log_tail": out[-3000:]})
    print(json.dumps({"phase": "steady", "wall_s": wall, **steady}), flush=True)
    # one process per job (before): what is left of the budget, shared
    for i, key in enumerate(("w0.5", "w1")):
        rows.append(sweep_phase(f"fresh_{key}", widths[key], n_jobs, epochs, False, (left() - 45) / (2 - i),
                                base, tmp))
    if left() > 40:
        rows.append(sweep_phase("share_w0.5", widths["w0.5"], 4, epochs, True, left() - 5, base, tmp,
                                jobs_per_gpu=2))
    fresh = {}
    for key in ("w0.5", "w1"):
        r = next((r for r in rows if r["phase"] == f"fresh_{key}"), None)
        if r and r["jobs_done"]:
            fresh[key] = (r["later_jobs"]["startup_s"] or r["first_job"]["startup_s"] or 0) + (
                r["later_jobs"]["first_epoch_tax_s"] or r["first_job"]["first_epoch_tax_s"] or 0)
    # the same jobs through warm and fresh workers: on the GPU not bit-equal (bf16, cuDNN
    # autotuning), but a warm engine that replayed stale state would show large differences
    agreement = {}
    for key in ("w0.5", "w1"):
        diffs = []
        for fresh_dir in (tmp / f"fresh_{key}").glob("*/metrics.csv"):
            warm_csv = tmp / f"warm_{key}" / fresh_dir.parent.name / "metrics.csv"
            if warm_csv.exists() and (fresh_dir.parent / "result.json").exists():
                a, b = (np.genfromtxt(f, delimiter=",", names=True) for f in (warm_csv, fresh_dir))
                diffs.append(float(np.max(np.abs(a["loss_noisy"] - b["loss_noisy"]))))
        agreement[key] = {"jobs_compared": len(diffs), "max_abs_diff_loss_noisy": max(diffs) if diffs else None}
    print(json.dumps({"warm_vs_fresh": agreement}), flush=True)
    result = {**header, "warm_vs_fresh": agreement, "phases": rows, "steady": steady, "projections": projections(rows, steady, fresh),
              "errors": errors}
    print(json.dumps({"projections": result["projections"]}, indent=1), flush=True)
    (out_dir / "warm_workers.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out_dir / 'warm_workers.json'}", flush=True)


if __name__ == "__main__":
    main()
