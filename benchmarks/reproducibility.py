"""Does one config give the same numbers every time on the GPU? Runs `train.py` as a user
would and compares the runs' records bit for bit (metrics.csv without `seconds`, and
result.json's numbers).

    python benchmarks/reproducibility.py --out repro/ [data.root=...]

Checks, with the default settings (deterministic kernels, bf16, compile, CUDA graphs):
  fresh        the same job twice, each in a fresh process
  other_gpu    the same job on a second GPU (skipped with one GPU)
  warm         the job as the second job of a warm worker (local_gpus launcher)
  resumed      the job killed (SIGKILL) after 4 of its 8 epochs and resumed
  w1, w2, tv   resnet18 width 1 and 2, tv_resnet18: each twice, a few epochs
and, as the control, the job twice with train.deterministic=false. Prints one table and
writes it (with every run's records) under --out.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOB = ["data=fashion_mnist", "model.width=0.5", "noise.rate=0.8", "lam=0.6", "seed=0",
       "train.epochs=8", "train.eval_every=2"]
SHORT = ["data=fashion_mnist", "noise.rate=0.8", "lam=0.6", "seed=0", "train.epochs=3", "train.eval_every=1"]
RESULT_KEYS = ("status", "epochs_completed", "test_acc", "best_acc", "avg_cos_struct_value", "history")


def train(run_dir, args, gpu, kill_after=None):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(gpu), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(REPO / "train.py"), *args, f"hydra.run.dir={run_dir}"]
    with open(Path(run_dir).parent / f"{Path(run_dir).name}.log", "a") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        if kill_after is not None:
            metrics = Path(run_dir) / "metrics.csv"
            while proc.poll() is None and (not metrics.exists() or len(metrics.read_text().splitlines()) <= kill_after):
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        proc.wait()


def warm_sweep(sweep_dir, args, gpu):
    """The job (seed 0) as the second job of one warm worker, after seed 1."""
    cmd = [sys.executable, str(REPO / "train.py"), "-m", *[a for a in args if not a.startswith("seed=")],
           "seed=1,0", "hydra/launcher=local_gpus", f"hydra.launcher.gpus=[{gpu}]", f"hydra.sweep.dir={sweep_dir}"]
    with open(f"{sweep_dir}.log", "w") as log:
        subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, check=False)
    return next(p.parent for p in Path(sweep_dir).glob("*seed=0*/result.json"))


def fingerprint(run_dir):
    """What must be identical: metrics.csv without `seconds`, and result.json's numbers."""
    lines = (Path(run_dir) / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name != "seconds"]
    rows = [[line.split(",")[i] for i in keep] for line in lines]
    result = json.loads((Path(run_dir) / "result.json").read_text())
    return rows, {k: result.get(k) for k in RESULT_KEYS}, result


def compare(name, a, b):
    rows_a, res_a, full = fingerprint(a)
    rows_b, res_b, _ = fingerprint(b)
    differ = [i for i, (x, y) in enumerate(zip(rows_a[1:], rows_b[1:]), 1) if x != y]
    return dict(check=name, a=str(a), b=str(b), identical=rows_a == rows_b and res_a == res_b,
                first_differing_epoch=differ[0] if differ else None, epochs=len(rows_a) - 1,
                best_error_a=full["best_error"], best_error_b=res_b["best_acc"] and 1 - res_b["best_acc"],
                model=full["model"], width=full["width_mult"], device=full["device_name"],
                deterministic=full["deterministic"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--compare-only", action="store_true", help="compare the runs already under --out")
    ap.add_argument("overrides", nargs="*", help="extra overrides for every run (e.g. data.root=...)")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    import torch

    gpus = torch.cuda.device_count()
    job, short = [*JOB, *args.overrides], [*SHORT, *args.overrides]
    d = {name: out / name for name in ("fresh_a", "fresh_b", "other_gpu", "resumed", "nondet_a", "nondet_b",
                                       "w1_a", "w1_b", "w2_a", "w2_b", "tv_a", "tv_b")}
    nondet = [*job, "train.deterministic=false"]
    second = 1 if gpus > 1 else 0
    found = {}
    queues = [
        [lambda: train(d["fresh_a"], job, 0), lambda: train(d["fresh_b"], job, 0),
         lambda: train(d["resumed"], job, 0, kill_after=4), lambda: train(d["nondet_a"], nondet, 0)],
        [lambda: train(d["other_gpu"], job, second) if gpus > 1 else None,
         lambda: found.update(warm=warm_sweep(out / "warm", job, second)), lambda: train(d["nondet_b"], nondet, second)],
    ]
    for model, override in (("w1", "model.width=1"), ("w2", "model.width=2"), ("tv", "model=tv_resnet18")):
        for queue, side, gpu in zip(queues, "ab", (0, second)):
            queue.append(lambda run=d[f"{model}_{side}"], o=override, g=gpu: train(run, [*short, o], g))
    if args.compare_only:
        found["warm"] = next((p.parent for p in (out / "warm").glob("*seed=0*/result.json")), None)
    elif gpus > 1:  # one queue per GPU
        threads = [threading.Thread(target=lambda q=q: [step() for step in q]) for q in queues]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for step in queues[0] + queues[1]:
            step()

    checks = [("fresh: same job twice", d["fresh_a"], d["fresh_b"]),
              ("warm: second job of a worker vs alone", d["fresh_a"], found.get("warm")),
              ("resumed after SIGKILL vs uninterrupted", d["fresh_a"], d["resumed"]),
              ("width 1 twice", d["w1_a"], d["w1_b"]), ("width 2 twice", d["w2_a"], d["w2_b"]),
              ("tv_resnet18 twice", d["tv_a"], d["tv_b"]),
              ("control, train.deterministic=false: same job twice", d["nondet_a"], d["nondet_b"])]
    if gpus > 1:
        checks.insert(1, ("other GPU: same job on GPU 1 vs GPU 0", d["fresh_a"], d["other_gpu"]))
    rows = []
    for name, a, b in checks:
        try:
            rows.append(compare(name, a, b))
        except (OSError, KeyError, ValueError, TypeError) as e:
            rows.append(dict(check=name, identical=None, error=f"{type(e).__name__}: {e}"))
    header = (f"# {time.strftime('%Y-%m-%d')} | {gpus} x {torch.cuda.get_device_name()} | torch {torch.__version__} | "
              f"CUDA {torch.version.cuda} | cuDNN {torch.backends.cudnn.version()}")
    lines = [header, "", "| check | identical | first differing epoch | epochs | best error (a, b) |",
             "|---|---|---|---|---|"]
    for r in rows:
        errors = f"{r.get('best_error_a')}, {r.get('best_error_b')}" if "error" not in r else r["error"]
        lines.append(f"| {r['check']} | {r['identical']} | {r.get('first_differing_epoch')} | "
                     f"{r.get('epochs')} | {errors} |")
    text = "\n".join(lines)
    print(text)
    (out / "reproducibility.md").write_text(text + "\n")
    (out / "reproducibility.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
