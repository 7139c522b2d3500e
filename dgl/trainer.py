"""The training loop: one run of dual-gradient learning, resumable at every epoch end."""

import logging
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from dgl import records
from dgl.data import Normalize, augment_epoch, load_dataset
from dgl.dual_step import DualGradientStep, GraphedStep
from dgl.models import build_model
from dgl.noise import make_noisy_labels

log = logging.getLogger("dgl")

EVAL_BATCH = 1000
WARMUP_STEPS = 3  # eager steps before CUDA-graph capture (creates momentum buffers, compiles)
METRIC_FIELDS = ["epoch", "lr", "loss_noisy", "loss_clean", "cos_struct_value", "test_acc", "seconds"]


def resolve_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def evaluate(net, images, labels, autocast_dtype):
    """Test accuracy of `net` in eval mode; one host sync."""
    was_training = net.training
    net.eval()
    correct = torch.zeros((), dtype=torch.long, device=labels.device)
    with torch.autocast(images.device.type, autocast_dtype, enabled=autocast_dtype is not None):
        for i in range(0, len(images), EVAL_BATCH):
            logits = net(images[i:i + EVAL_BATCH])
            correct += (logits.argmax(1) == labels[i:i + EVAL_BATCH]).sum()
    net.train(was_training)
    return correct.item() / len(labels)


def _fmt_seconds(s):
    return f"{int(s // 60)}m{int(s % 60):02d}s"


def train(cfg, run_dir, overrides=()):
    """Train one configuration in `run_dir`, resuming from its checkpoint if there is one.
    Writes labels.npz, config.yaml, metrics.csv, result.json; returns the result dict."""
    run_dir = Path(run_dir)
    t = cfg.train
    device = resolve_device(t.device)
    cuda = device.type == "cuda"
    precision = t.precision if t.precision != "auto" else ("bf16" if cuda else "fp32")
    autocast_dtype = torch.bfloat16 if precision == "bf16" else None
    use_compile, use_graphs = t.compile and cuda, t.cuda_graphs and cuda
    storage = device if cfg.data.on_device else torch.device("cpu")

    dataset = load_dataset(cfg.data)
    clean = dataset.train_labels
    noisy = make_noisy_labels(cfg.noise.name, clean, cfg.noise.rate, cfg.seed, dataset.num_classes)
    if not (run_dir / records.LABELS).exists():
        records.write_labels(run_dir / records.LABELS, clean, noisy)
        records.write_text(run_dir / records.CONFIG, OmegaConf.to_yaml(cfg, resolve=True))

    # The notebooks' seeding, in their order: seed everything, draw the noise (NumPy,
    # reseeded inside), then build the model on the CPU, so the same seed gives the
    # same initial weights as the notebooks.
    torch.manual_seed(cfg.seed)
    torch.cuda.manual_seed_all(cfg.seed)
    np.random.seed(cfg.seed)
    model = build_model(cfg.model.name, cfg.model.width, dataset.num_classes, dataset.channels)
    memory_format = torch.channels_last if cuda else torch.contiguous_format
    net = torch.nn.Sequential(Normalize(dataset.mean, dataset.std, channels_last=cuda), model)
    net = net.to(device, memory_format=memory_format)

    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=t.momentum,
                                weight_decay=t.weight_decay, foreach=cuda)
    milestones = [int(f * t.epochs) for f in t.milestones]
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=t.gamma)
    fast_net = torch.compile(net) if use_compile else net
    step = DualGradientStep(fast_net, optimizer, cfg.lam, autocast_dtype)
    batch_shape = (t.batch_size, *dataset.train_images.shape[1:])
    graphed = GraphedStep(step, batch_shape) if use_graphs else None

    # Data: uint8 images and both label vectors where the batches are cut (the device,
    # unless data.on_device=false); the epoch's order and augmentation come from a
    # generator of our own, so resuming can restore it exactly.
    train_images = dataset.train_images.to(storage)
    labels_noisy = torch.from_numpy(noisy).to(storage)
    labels_clean = torch.from_numpy(clean).to(storage)
    test_images = dataset.test_images.to(device)
    test_labels = torch.from_numpy(dataset.test_labels).to(device)
    data_rng = torch.Generator(device=storage).manual_seed(cfg.seed)
    n_train = len(train_images)

    state = dict(epoch=0, global_step=0, best_acc=0.0, elapsed=0.0, history={"epoch": [], "test_acc": [], "test_error": []},
                 metrics=[], cosines=[], status="completed")
    checkpoint_path = run_dir / records.CHECKPOINT
    if checkpoint_path.exists():
        ckpt = torch.load(checkpoint_path, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        step.value_dir.copy_(ckpt["value_dir"])
        data_rng.set_state(ckpt["data_rng"].to(data_rng.device) if storage.type != "cpu" else ckpt["data_rng"])
        torch.set_rng_state(ckpt["torch_rng"])
        if cuda and ckpt.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
        np.random.set_state(ckpt["numpy_rng"])
        state.update(ckpt["state"])
        log.info(f"resumed from {checkpoint_path} at epoch {state['epoch']}/{t.epochs}")

    def save_checkpoint():
        records.save_torch(checkpoint_path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "value_dir": step.value_dir,
            "data_rng": data_rng.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if cuda else None,
            "numpy_rng": np.random.get_state(), "state": state,
        })

    side_stream = torch.cuda.Stream() if use_graphs else None
    steps_here = 0  # steps taken by this process (graphs are captured after a warm-up)
    log.info(f"{cfg.model.name} width {cfg.model.width} | {dataset.name} {cfg.noise.name} {cfg.noise.rate} | "
             f"lam {cfg.lam} lr {cfg.lr} seed {cfg.seed} | {device} {precision}"
             f"{' compile' if use_compile else ''}{' cuda-graphs' if use_graphs else ''} | {run_dir}")
    for epoch in range(state["epoch"], t.epochs):
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        order, images = augment_epoch(train_images, data_rng)
        y_noisy, y_clean = labels_noisy[order], labels_clean[order]
        for i in range(0, n_train, t.batch_size):
            batch = [b[i:i + t.batch_size].to(device, non_blocking=True) for b in (images, y_noisy, y_clean)]
            refresh = state["global_step"] % t.value_every == 0
            # The last, partial batch runs eagerly: compiling or capturing its shape
            # would cost more than it saves.
            step.net = fast_net if len(batch[0]) == t.batch_size else net
            if graphed is not None and steps_here >= WARMUP_STEPS and len(batch[0]) == t.batch_size:
                graphed(*batch, refresh)
            elif side_stream is not None:  # warm-up before capture, and the last partial batch
                side_stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side_stream):
                    step(*batch, refresh)
                torch.cuda.current_stream().wait_stream(side_stream)
            else:
                step(*batch, refresh)
            state["global_step"] += 1
            steps_here += 1
        scheduler.step()
        loss_noisy, loss_clean, cosine, _ = step.take_sums()
        state["epoch"] = epoch + 1
        row = {"epoch": epoch + 1, "lr": lr, "loss_noisy": loss_noisy, "loss_clean": loss_clean,
               "cos_struct_value": cosine, "test_acc": ""}
        if not (math.isfinite(loss_noisy) and math.isfinite(loss_clean)):
            state["status"] = "diverged"
        elif (epoch + 1) % t.eval_every == 0 or epoch + 1 == t.epochs:
            acc = evaluate(net, test_images, test_labels, autocast_dtype)
            state["best_acc"] = max(state["best_acc"], acc)
            state["history"]["epoch"].append(epoch + 1)
            state["history"]["test_acc"].append(acc)
            state["history"]["test_error"].append(1 - acc)
            row["test_acc"] = acc
        seconds = time.perf_counter() - start
        state["elapsed"] += seconds
        row["seconds"] = seconds
        state["metrics"].append(row)
        state["cosines"].append(cosine)
        records.write_csv(run_dir / records.METRICS, state["metrics"], METRIC_FIELDS)
        if t.progress:
            done = epoch + 1 - (state["metrics"][0]["epoch"] - 1)
            eta = (t.epochs - epoch - 1) * state["elapsed"] / max(done, 1)
            acc_text = f" | acc {row['test_acc']:.4f}" if row["test_acc"] != "" else ""
            log.info(f"epoch {epoch + 1}/{t.epochs} | loss noisy {loss_noisy:.4f} clean {loss_clean:.4f} | "
                     f"cos {cosine:+.4f} | lr {lr:.4g}{acc_text} | {seconds:.2f}s | ETA {_fmt_seconds(eta)}")
        if state["status"] == "diverged":
            log.warning(f"non-finite loss at epoch {epoch + 1}: stopping, status diverged")
            break
        if (epoch + 1) % t.checkpoint_every == 0 and epoch + 1 < t.epochs:
            save_checkpoint()

    history = state["history"]
    final_acc = history["test_acc"][-1] if history["test_acc"] and state["status"] == "completed" else None
    best_acc = state["best_acc"] if history["test_acc"] else None
    result = {
        "status": state["status"],
        "width_mult": float(cfg.model.width), "lr": float(cfg.lr), "noise_rate": float(cfg.noise.rate),
        "lambda": float(cfg.lam), "seed": int(cfg.seed),
        "test_acc": final_acc, "test_error": None if final_acc is None else 1 - final_acc,
        "best_acc": best_acc, "best_error": None if best_acc is None else 1 - best_acc,
        "avg_cos_struct_value": float(np.mean(state["cosines"])) if state["cosines"] else None,
        "time_seconds": state["elapsed"], "history": history,
        "model": cfg.model.name, "dataset": dataset.name, "noise": cfg.noise.name, "epochs": int(t.epochs),
        "batch_size": int(t.batch_size), "value_every": int(t.value_every), "precision": precision,
        "epochs_completed": state["epoch"], "code_version": records.code_version(),
        "torch_version": torch.__version__, "host": platform.node(),
        "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
        "overrides": list(overrides), "config": OmegaConf.to_container(cfg, resolve=True), "error": None,
    }
    records.write_json(run_dir / records.RESULT, result)
    if checkpoint_path.exists():
        os.unlink(checkpoint_path)  # result.json holds everything a finished run needs
    log.info(f"{state['status']}: best error {result['best_error']} | final error {result['test_error']} | "
             f"mean cos {result['avg_cos_struct_value']} | {_fmt_seconds(state['elapsed'])}")
    return result
