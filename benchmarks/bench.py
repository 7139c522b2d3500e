"""Time the notebooks' loop against the project's trainer on one GPU; print one table.

    python benchmarks/bench.py                       # widths 0.5/1/2 and tv_resnet18, synthetic CIFAR-shaped data
    python benchmarks/bench.py --configs w1 --epochs 2 --full-run
    python benchmarks/bench.py --concurrency 1,2,4 --configs w0.5
    python benchmarks/bench.py --no-baseline --deterministic-cost   # the cost of train.deterministic

Baseline ("notebook"): benchmarks/notebook_loop.py's loop (fp32, per-step .item(),
flatten/copy of all gradients) fed by a DataLoader with 4 workers and PIL
RandomCrop/flip/ToTensor/Normalize, as the notebooks do. Trainer: dgl.trainer.Trainer
with the config's defaults (bf16, channels_last, torch.compile, CUDA graphs, data on the
GPU). Both run on CIFAR-shaped synthetic data (the same compute as CIFAR-10).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dgl  # noqa: F401
from dgl.data import CIFAR10_MEAN, CIFAR10_STD, make_synthetic
from dgl.models import build_model

CONFIGS = {"w0.5": ("resnet18", 0.5), "w1": ("resnet18", 1.0), "w2": ("resnet18", 2.0), "tv": ("tv_resnet18", 1.0)}
N_TRAIN, N_TEST, BATCH, K = 50_000, 10_000, 256, 16
STEPS_PER_EPOCH = -(-N_TRAIN // BATCH)  # 196, the last one partial


def forward_flops_per_image(name, width):
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(name, width)
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 32, 32))
    return counter.get_total_flops()


def flops_per_step(fwd):
    # forward + backward ~ 3 forwards; every K-th step adds a second forward + backward (clean labels)
    return 3 * fwd * BATCH * (1 + 1 / K)


def matmul_peak_tflops():
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    return 2 * 8192**3 * 10 / (time.perf_counter() - start) / 1e12


# --------------------------------------------------------------------------- baseline

class PILDataset(torch.utils.data.Dataset):
    """Like torchvision's CIFAR10: uint8 HWC arrays -> PIL -> transforms; returns the index too."""

    def __init__(self, images_u8_nchw, labels):
        import torchvision.transforms as T

        self.images = images_u8_nchw.permute(0, 2, 3, 1).contiguous().numpy()
        self.labels = labels
        self.transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                                    T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i]), i


def time_notebook(name, width, data, steps):
    from benchmarks.notebook_loop import notebook_loop

    loader = torch.utils.data.DataLoader(PILDataset(data.train_images, data.train_labels), batch_size=BATCH,
                                         shuffle=True, num_workers=4, pin_memory=True)
    noisy = torch.from_numpy(data.train_labels).cuda()
    clean = noisy.clone()
    model = build_model(name, width).cuda()

    def batches():
        for inputs, _, idx in loader:
            idx = idx.cuda(non_blocking=True)
            yield inputs, noisy[idx], clean[idx]

    marks = {}

    class Done(Exception):
        pass

    def on_step(n):
        if n in (20, 20 + steps):
            torch.cuda.synchronize()
            marks[n] = time.perf_counter()
            if n == 20 + steps:
                raise Done

    try:
        notebook_loop(model, [batches()] * 10, 0.45, K, 0.1, [50, 75], device="cuda", on_step=on_step)
    except Done:
        pass
    return (marks[20 + steps] - marks[20]) / steps


# ---------------------------------------------------------------------------- trainer

SYNTHETIC = ["data=synthetic", f"data.n_train={N_TRAIN}", f"data.n_test={N_TEST}", "train.progress=false"]


def time_trainer(name, width, epochs, extra=(), base=SYNTHETIC):
    """(first epoch seconds incl. compile+capture, mean seconds of the later epochs, eval seconds)
    of `epochs` epochs of the trainer on the config `base` + the model + `extra`."""
    from dgl.config import compose
    from dgl.trainer import Trainer, evaluate

    def sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    cfg = compose([*base, f"model={name}", f"model.width={width}", f"train.epochs={epochs}", *extra])
    trainer = Trainer(cfg, tempfile.mkdtemp())
    times = []
    for _ in range(epochs):
        sync()
        start = time.perf_counter()
        trainer.train_epoch()
        sync()
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    evaluate(trainer.net, trainer.test_images, trainer.test_labels, trainer.autocast_dtype)
    eval_s = time.perf_counter() - start
    return times[0], float(np.mean(times[1:])), eval_s


def concurrency(name, width, procs, epochs):
    """Aggregate epochs/hour with `procs` trainer processes sharing the GPU."""
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from benchmarks.bench import time_trainer; "
            f"import json; print(json.dumps(time_trainer({name!r}, {width}, {epochs})))")
    start = time.perf_counter()
    ps = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(procs)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in ps]
    wall = time.perf_counter() - start
    steady = [o[1] for o in outs]  # per-process seconds per epoch once warm
    return procs / float(np.mean(steady)), wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="w0.5,w1,w2,tv")
    ap.add_argument("--epochs", type=int, default=3, help="trainer epochs timed (the first includes compile)")
    ap.add_argument("--baseline-steps", type=int, default=60)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--concurrency", default="", help="e.g. 1,2,4: processes sharing the GPU")
    ap.add_argument("--ablation", action="store_true",
                    help="time the first config with each speed option switched off in turn")
    ap.add_argument("--deterministic-cost", action="store_true",
                    help="time each config with train.deterministic=false, true, false (same process)")
    ap.add_argument("--full-run", action="store_true", help="also time a real 100-epoch width-1 train.py run")
    ap.add_argument("--out", default=None, help="write the table as JSON here")
    args = ap.parse_args()

    peak = matmul_peak_tflops()
    print(f"# {time.strftime('%Y-%m-%d')} | {torch.cuda.get_device_name()} | torch {torch.__version__} | "
          f"bf16 matmul peak measured {peak:.0f} TFLOP/s", flush=True)
    data = make_synthetic(N_TRAIN, N_TEST)
    rows = []
    for key in [] if args.deterministic_cost else args.configs.split(","):
        name, width = CONFIGS[key]
        fwd = forward_flops_per_image(name, width)
        step_flops = flops_per_step(fwd)
        base_ms = None if args.no_baseline else 1e3 * time_notebook(name, width, data, args.baseline_steps)
        first_s, epoch_s, eval_s = time_trainer(name, width, args.epochs)
        ms = 1e3 * epoch_s / STEPS_PER_EPOCH
        row = dict(config=key, model=name, width=width, gflop_fwd=fwd / 1e9,
                   notebook_ms_step=base_ms, trainer_ms_step=ms,
                   trainer_img_s=BATCH / ms * 1e3, mfu=step_flops / (ms / 1e3) / (peak * 1e12),
                   notebook_min_100ep=None if base_ms is None else base_ms * STEPS_PER_EPOCH * 100 / 6e4,
                   trainer_min_100ep=(epoch_s * 100 + eval_s * 10) / 60,
                   compile_capture_s=first_s - epoch_s,
                   speedup=None if base_ms is None else base_ms / ms)
        rows.append(row)
        print(json.dumps(row), flush=True)

    if args.ablation:
        name, width = CONFIGS[args.configs.split(",")[0]]
        print("\n| option switched off | trainer ms/step |\n|---|---|")
        for off in ("", "train.compile=false", "train.cuda_graphs=false", "train.precision=fp32",
                    "data.on_device=false"):
            _, epoch_s, _ = time_trainer(name, width, args.epochs, [off] if off else ())
            print(f"| {off or 'none (all on)'} | {1e3 * epoch_s / STEPS_PER_EPOCH:.2f} |", flush=True)

    if args.deterministic_cost:
        print("\n| config | fast ms/step | deterministic ms/step | fast again ms/step | deterministic / fast |")
        print("|---|---|---|---|---|")
        for key in args.configs.split(","):
            name, width = CONFIGS[key]
            fast, det, fast2 = (1e3 * time_trainer(name, width, args.epochs, (f"train.deterministic={d}",))[1]
                                / STEPS_PER_EPOCH for d in ("false", "true", "false"))
            print(f"| {key} | {fast:.2f} | {det:.2f} | {fast2:.2f} | {2 * det / (fast + fast2):.3f} |", flush=True)

    if args.concurrency:
        name, width = CONFIGS[args.configs.split(",")[0]]
        base = None
        for procs in map(int, args.concurrency.split(",")):
            rate, wall = concurrency(name, width, procs, args.epochs)
            base = base or rate
            print(json.dumps(dict(concurrency=procs, config=args.configs.split(",")[0],
                                  epochs_per_hour=rate * 3600, vs_one=rate / base, wall_s=wall)), flush=True)

    if args.full_run:
        out = tempfile.mkdtemp()
        start = time.perf_counter()
        subprocess.run([sys.executable, str(REPO / "train.py"), "data=synthetic", f"data.n_train={N_TRAIN}",
                        f"data.n_test={N_TEST}", "train.progress=false", f"hydra.run.dir={out}"], check=True)
        wall = time.perf_counter() - start
        result = json.loads(Path(out, "result.json").read_text())
        print(json.dumps(dict(full_run="resnet18 width 1, 100 epochs, synthetic CIFAR-shaped", wall_s=wall,
                              train_s=result["time_seconds"], best_error=result["best_error"])), flush=True)

    print("\n| config | notebook ms/step | trainer ms/step | img/s | MFU | notebook min/100ep | "
          "trainer min/100ep | compile+capture s | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        nb = "-" if r["notebook_ms_step"] is None else f"{r['notebook_ms_step']:.1f}"
        nbm = "-" if r["notebook_min_100ep"] is None else f"{r['notebook_min_100ep']:.1f}"
        sp = "-" if r["speedup"] is None else f"{r['speedup']:.1f}x"
        print(f"| {r['config']} | {nb} | {r['trainer_ms_step']:.2f} | {r['trainer_img_s']:.0f} | {100 * r['mfu']:.0f}% | "
              f"{nbm} | {r['trainer_min_100ep']:.2f} | {r['compile_capture_s']:.0f} | {sp} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
