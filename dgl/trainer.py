"""The training loop: one run of dual-gradient learning, resumable at every epoch end."""

import logging
import math
import os
import pickle
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dgl import identity, records
from dgl.config import device_type
from dgl.data import augment_epoch
from dgl.engine import WARM, set_kernels, use_compile_cache
from dgl.models import build_model
from dgl.noise import make_noisy_labels

log = logging.getLogger("dgl")

EVAL_BATCH = 1000
PROGRESS_AFTER_S = 10  # show a progress bar within an epoch once it has taken this long
WARMUP_STEPS = 3  # eager steps before CUDA-graph capture (creates momentum buffers, compiles)
METRIC_FIELDS = ["epoch", "lr", "loss_noisy", "loss_clean", "cos_struct_value", "test_acc", "seconds"]


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


def _fmt(x, spec=".4f"):
    return "n/a" if x is None else format(x, spec)


class Trainer:
    """One run: everything built from the config in __init__, then fit().
    Resumes from <run_dir>/checkpoint.pt when there is one. The model, optimizer and
    compiled step come from this process's warm engine when the last job had the same shape."""

    def __init__(self, cfg, run_dir, overrides=()):
        self.cfg, self.run_dir, self.overrides = cfg, Path(run_dir), list(overrides)
        t = cfg.train
        self.device = torch.device(device_type(cfg))
        self.cuda = self.device.type == "cuda"
        self.precision = identity.resolve_precision(t.precision, self.device.type)
        self.autocast_dtype = torch.bfloat16 if self.precision == "bf16" else None
        set_kernels(t.deterministic)  # before anything is compiled or captured
        if self.cuda and t.compile:
            use_compile_cache(t.compile_cache)

        self.dataset, tensors = WARM.data(cfg, self.device)
        noisy = self.noisy_labels()
        initial = self.initial_model()
        engine = self.engine = WARM.engine_for(cfg, self.device, self.precision, self.autocast_dtype,
                                               self.dataset, initial)
        log.info(f"engine: {f'warm, job {engine.jobs} on it' if engine.jobs > 1 else 'new'} (pid {os.getpid()})")
        self.model, self.net, self.fast_net = engine.model, engine.net, engine.fast_net
        self.optimizer, self.step, self.graphed = engine.optimizer, engine.step, engine.graphed
        # epochs 50 and 75 of 100, as in the notebooks; never epoch 0 in short runs
        milestones = [max(1, int(f * t.epochs)) for f in t.milestones]
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones, gamma=t.gamma)

        # Data: both label vectors where the batches are cut; the epoch's order and
        # augmentation come from a generator of our own, so resuming can restore it exactly.
        self.train_images, self.labels_clean = tensors["train_images"], tensors["labels_clean"]
        self.test_images, self.test_labels = tensors["test_images"], tensors["test_labels"]
        self.labels_noisy = torch.from_numpy(noisy).to(self.train_images.device)
        self.data_rng = torch.Generator(device=self.train_images.device).manual_seed(cfg.seed)

        self.state = dict(epoch=0, global_step=0, best_acc=0.0, elapsed=0.0, status="completed",
                          history={"epoch": [], "test_acc": [], "test_error": []}, metrics=[])
        self.checkpoint_path = self.run_dir / records.CHECKPOINT
        self.saver = records.BackgroundSaver()
        records.remove_stale_temp_files(self.run_dir)
        if self.checkpoint_path.exists():
            self.load_checkpoint()
            engine.keep_optimizer_tensors()

    def noisy_labels(self):
        """The notebooks' noisy labels for this seed, recorded in labels.npz."""
        cfg, clean = self.cfg, self.dataset.train_labels
        noisy = make_noisy_labels(cfg.noise.name, clean, cfg.noise.rate, cfg.seed, self.dataset.num_classes)
        if not (self.run_dir / records.LABELS).exists():
            records.write_labels(self.run_dir / records.LABELS, clean, noisy)
        return noisy

    def initial_model(self):
        """The notebooks' seeding, in their order: seed everything, then build the model on
        the CPU, so the same seed gives the same initial weights as the notebooks."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        torch.cuda.manual_seed_all(cfg.seed)
        np.random.seed(cfg.seed)
        return build_model(cfg.model.name, cfg.model.width, self.dataset.num_classes, self.dataset.channels)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self):
        """Snapshot the full training state to host memory now; write it in the background.
        Tensors and plain values only, so that loading it runs no code (weights_only)."""
        scheduler = self.scheduler.state_dict()
        scheduler["milestones"] = dict(scheduler["milestones"])  # a Counter: not a plain value
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        self.saver.save(self.checkpoint_path, records.to_cpu({
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": scheduler, "value_dir": self.step.per_parameter(self.step.value_dir),
            "data_rng": self.data_rng.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.cuda else None,
            "numpy_rng": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "state": self.state,
        }))

    def load_checkpoint(self):
        try:
            ckpt = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        except (RuntimeError, EOFError, pickle.UnpicklingError) as e:  # truncated, garbled or foreign
            corrupt, n = self.checkpoint_path.with_name(records.CHECKPOINT + ".corrupt"), 1
            while corrupt.exists():  # keep every bad file for inspection
                corrupt, n = corrupt.with_name(f"{records.CHECKPOINT}.corrupt{n}"), n + 1
            os.replace(self.checkpoint_path, corrupt)
            log.warning(f"unreadable checkpoint {self.checkpoint_path} (truncated, garbled, or holding more "
                        f"than tensors and plain values: {str(e).splitlines()[0][:100]}): moved to "
                        f"{corrupt.name}; starting over from epoch 0")
            return
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scheduler.milestones = Counter(self.scheduler.milestones)
        for view, saved in zip(self.step.per_parameter(self.step.value_dir), ckpt["value_dir"]):
            view.copy_(saved)
        self.data_rng.set_state(ckpt["data_rng"].cpu())
        torch.set_rng_state(ckpt["torch_rng"].cpu())
        if self.cuda and ckpt["cuda_rng"] is not None:
            torch.cuda.set_rng_state_all([s.cpu() for s in ckpt["cuda_rng"]])
        name, keys, pos, has_gauss, gauss = ckpt["numpy_rng"]
        np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, gauss))
        self.state.update(ckpt["state"])
        log.info(f"resumed from {self.checkpoint_path} at epoch {self.state['epoch']}/{self.cfg.train.epochs}")

    # ------------------------------------------------------------------ training
    def train_epoch(self):
        """One pass over the training set; returns mean (loss_noisy, loss_clean, cosine)."""
        t, state = self.cfg.train, self.state
        order, images = augment_epoch(self.train_images, self.data_rng)
        y_noisy, y_clean = self.labels_noisy[order], self.labels_clean[order]
        # A bar only once an epoch has run PROGRESS_AFTER_S (CPU epochs, a GPU run's compiling
        # first epoch); it counts steps and reads no loss, so it adds no host sync.
        steps = tqdm(range(0, len(images), t.batch_size), f"epoch {state['epoch'] + 1}/{t.epochs}", unit="step",
                     leave=False, delay=PROGRESS_AFTER_S, mininterval=5, disable=not t.progress)
        for i in steps:
            batch = [b[i:i + t.batch_size].to(self.device, non_blocking=True) for b in (images, y_noisy, y_clean)]
            refresh = state["global_step"] % t.value_every == 0
            full = len(batch[0]) == t.batch_size
            # The last, partial batch runs eagerly: compiling or capturing its shape would
            # cost more than it saves.
            self.step.net = self.fast_net if full else self.net
            side_stream = self.engine.side_stream
            if self.graphed is not None and full and self.engine.steps_here >= WARMUP_STEPS:
                self.graphed(*batch, refresh)
            elif side_stream is not None:  # warm-up before capture runs on a side stream
                side_stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side_stream):
                    self.step(*batch, refresh)
                torch.cuda.current_stream().wait_stream(side_stream)
            else:
                self.step(*batch, refresh)
            state["global_step"] += 1
            self.engine.steps_here += 1
        self.scheduler.step()
        return self.step.take_sums()

    def fit(self):
        """Train the remaining epochs, write the records, return the result dict."""
        cfg, t, state = self.cfg, self.cfg.train, self.state
        log.info(f"{cfg.model.name} width {cfg.model.width} | {self.dataset.name} {cfg.noise.name} {cfg.noise.rate} | "
                 f"lam {cfg.lam} lr {cfg.lr} seed {cfg.seed} | {self.device} {self.precision}"
                 f"{' compile' if self.engine.use_compile else ''}{' cuda-graphs' if self.engine.use_graphs else ''}"
                 f"{' deterministic' if t.deterministic else ''} | {self.run_dir}")
        first_epoch = state["epoch"]
        for epoch in range(first_epoch, t.epochs):
            start = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            loss_noisy, loss_clean, cosine = self.train_epoch()
            state["epoch"] = epoch + 1
            row = {"epoch": epoch + 1, "lr": lr, "loss_noisy": loss_noisy, "loss_clean": loss_clean,
                   "cos_struct_value": cosine, "test_acc": ""}
            if not (math.isfinite(loss_noisy) and math.isfinite(loss_clean)):
                state["status"] = "diverged"
            elif (epoch + 1) % t.eval_every == 0 or epoch + 1 == t.epochs:
                acc = evaluate(self.net, self.test_images, self.test_labels, self.autocast_dtype)
                state["best_acc"] = max(state["best_acc"], acc)
                for key, value in (("epoch", epoch + 1), ("test_acc", acc), ("test_error", 1 - acc)):
                    state["history"][key].append(value)
                row["test_acc"] = acc
            row["seconds"] = seconds = time.perf_counter() - start
            state["elapsed"] += seconds
            state["metrics"].append(row)
            records.write_csv(self.run_dir / records.METRICS, state["metrics"], METRIC_FIELDS)
            if t.progress:
                # ETA from this process's recent epochs, leaving out its first (compile, capture)
                recent = [r["seconds"] for r in state["metrics"][first_epoch + 1:]][-5:] or [seconds]
                eta = (t.epochs - epoch - 1) * sum(recent) / len(recent)
                acc_text = f" | acc {row['test_acc']:.4f}" if row["test_acc"] != "" else ""
                log.info(f"epoch {epoch + 1}/{t.epochs} | loss noisy {loss_noisy:.4f} clean {loss_clean:.4f} | "
                         f"cos {cosine:+.4f} | lr {lr:.4g}{acc_text} | {seconds:.2f}s | ETA {_fmt_seconds(eta)}")
            if state["status"] == "diverged":
                log.warning(f"non-finite loss at epoch {epoch + 1}: stopping, status diverged")
                break
            if (epoch + 1) % t.checkpoint_every == 0 and epoch + 1 < t.epochs:
                self.save_checkpoint()
        return self.finish()

    def finish(self):
        state = self.state
        result = records.run_result(identity.recorded(self.cfg, self.device.type), self.overrides,
                                    state["status"], state, device_name=self.device_name())
        self.saver.wait()
        records.write_json(self.run_dir / records.RESULT, result)
        if self.checkpoint_path.exists():
            os.unlink(self.checkpoint_path)  # result.json holds everything a finished run needs
        log.info(f"{state['status']}: best error {_fmt(result['best_error'])} | final error "
                 f"{_fmt(result['test_error'])} | mean cos {_fmt(result['avg_cos_struct_value'], '+.4f')} | "
                 f"{_fmt_seconds(state['elapsed'])}")
        return result

    def device_name(self):
        return torch.cuda.get_device_name(self.device) if self.cuda else "cpu"


def train(cfg, run_dir, overrides=()):
    """Train one configuration in `run_dir` (resuming if a checkpoint is there)."""
    trainer = None
    try:
        trainer = Trainer(cfg, run_dir, overrides)
        return trainer.fit()
    except BaseException:
        if trainer is not None:
            trainer.saver.settle()
        WARM.drop()  # its state is undefined now; the next job builds a fresh one
        raise
