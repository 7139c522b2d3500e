"""The training loop: one run of dual-gradient learning, resumable at every epoch end."""

import logging
import math
import os
import pickle
import platform
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from dgl import records
from dgl.config import fingerprint, record
from dgl.data import Normalize, augment_epoch, load_dataset
from dgl.dual_step import DualGradientStep, GraphedStep
from dgl.models import build_model
from dgl.noise import make_noisy_labels

log = logging.getLogger("dgl")

EVAL_BATCH = 1000
PROGRESS_AFTER_S = 10  # show a progress bar within an epoch once it has taken this long
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


class Engine:
    """What a worker process keeps between jobs of one shape (model, width, data, batch size,
    precision, speed options, device): the dataset on the device, the model, its compiled
    module, the optimizer, the flat gradient buffers and the captured CUDA graphs. A new job
    writes its initial weights and a fresh optimizer state into the same tensors, so the
    compiled code and the graphs stay valid and its first epoch costs a steady one."""

    def __init__(self, key, cfg, device, autocast_dtype, dataset, model):
        self.key, self.device = key, device
        cuda = device.type == "cuda"
        memory_format = torch.channels_last if cuda else torch.contiguous_format
        net = torch.nn.Sequential(Normalize(dataset.mean, dataset.std, channels_last=cuda), model)
        self.model, self.net = model, net.to(device, memory_format=memory_format)
        t = cfg.train
        self.optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=t.momentum,
                                         weight_decay=t.weight_decay, foreach=cuda)
        self.use_compile, self.use_graphs = t.compile and cuda, t.cuda_graphs and cuda
        self.fast_net = torch.compile(self.net) if self.use_compile else self.net
        self.step = DualGradientStep(self.fast_net, self.optimizer, cfg.lam, autocast_dtype)
        batch_shape = (t.batch_size, *dataset.train_images.shape[1:])
        self.graphed = GraphedStep(self.step, batch_shape) if self.use_graphs else None
        self.side_stream = torch.cuda.Stream() if self.use_graphs else None
        self.steps_here = 0  # steps taken on this engine (graphs are captured after a warm-up)
        self.momentum = {}   # parameter -> its momentum buffer, once the optimizer made one
        self.jobs = 0        # jobs started on this engine

    def start_job(self, cfg, initial_model):
        """Reset to a fresh run: initial_model's weights and buffers, no optimizer state."""
        if initial_model is not self.model:  # a reused engine
            with torch.no_grad():
                for mine, theirs in ((self.model.parameters(), initial_model.parameters()),
                                     (self.model.buffers(), initial_model.buffers())):
                    for dst, src in zip(mine, theirs, strict=True):
                        dst.copy_(src)
        for group in self.optimizer.param_groups:
            group.update(lr=cfg.lr, momentum=cfg.train.momentum, weight_decay=cfg.train.weight_decay)
            group.pop("initial_lr", None)  # the new scheduler takes it from lr
        self.momentum = {p: s["momentum_buffer"] for p, s in self.optimizer.state.items()
                         if s.get("momentum_buffer") is not None}
        # With dampening 0 the first step's buf * momentum + g is g exactly, as a fresh
        # optimizer's clone of g: zeroing keeps the tensors the graphs captured.
        for buf in self.momentum.values():
            buf.zero_()
        self.step.reset(cfg.lam)

    def keep_optimizer_tensors(self):
        """After optimizer.load_state_dict (resume), which makes new momentum tensors: copy
        them into the ones the captured graphs use, and put those back."""
        for p, buf in self.momentum.items():
            state = self.optimizer.state[p]
            buf.copy_(state["momentum_buffer"])
            state["momentum_buffer"] = buf


_engine = None  # this process's Engine: one shape at a time
_data = None    # (key, dataset, tensors on the device): the last dataset loaded


def shape_key(cfg, device, precision):
    d, t = cfg.data, cfg.train
    data = (d.name, d.n_train, d.n_test, d.image_size) if d.name == "synthetic" else (d.name,)
    return (cfg.model.name, float(cfg.model.width), data, t.batch_size, precision, t.compile,
            t.cuda_graphs, d.on_device, str(device))


def drop_engine():
    """Free the cached engine (and its compiled code): on a shape change, or after a failure."""
    global _engine
    if _engine is None:
        return
    compiled, cuda, _engine = _engine.use_compile, _engine.device.type == "cuda", None
    if compiled:
        torch._dynamo.reset()  # its code cache would count the next model as a recompile
    if cuda:
        torch.cuda.empty_cache()


def load_data(cfg, device):
    """The dataset, with its uint8 images and clean labels where the batches are cut (the
    device, unless data.on_device=false); cached for the next job on the same data."""
    global _data
    key = (OmegaConf.to_yaml(cfg.data, resolve=True), str(device))
    if _data is None or _data[0] != key:
        _data = None
        dataset = load_dataset(cfg.data)
        storage = device if cfg.data.on_device else torch.device("cpu")
        _data = (key, dataset, {
            "train_images": dataset.train_images.to(storage),
            "labels_clean": torch.from_numpy(dataset.train_labels).to(storage),
            "test_images": dataset.test_images.to(device),
            "test_labels": torch.from_numpy(dataset.test_labels).to(device)})
    return _data[1], _data[2]


def use_compile_cache(path):
    """Keep Inductor's and Triton's caches in `path` (shared by a sweep's jobs), not /tmp."""
    if path:
        path = os.path.expanduser(str(path))
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = path
        os.environ["TRITON_CACHE_DIR"] = os.path.join(path, "triton")


class Trainer:
    """One run: everything built from the config in __init__, then fit().
    Resumes from <run_dir>/checkpoint.pt when there is one. The model, optimizer and
    compiled step come from this process's Engine when the last job had the same shape."""

    def __init__(self, cfg, run_dir, overrides=()):
        global _engine
        self.cfg, self.run_dir, self.overrides = cfg, Path(run_dir), list(overrides)
        t = cfg.train
        device = self.device = resolve_device(t.device)
        self.cuda = cuda = device.type == "cuda"
        self.precision = t.precision if t.precision != "auto" else ("bf16" if cuda else "fp32")
        self.autocast_dtype = torch.bfloat16 if self.precision == "bf16" else None
        if cuda:
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
            if t.compile:
                use_compile_cache(t.compile_cache)

        self.dataset, tensors = load_data(cfg, device)
        dataset = self.dataset
        clean = dataset.train_labels
        noisy = make_noisy_labels(cfg.noise.name, clean, cfg.noise.rate, cfg.seed, dataset.num_classes)
        if not (self.run_dir / records.LABELS).exists():
            records.write_labels(self.run_dir / records.LABELS, clean, noisy)

        # The notebooks' seeding, in their order: seed everything, draw the noise (NumPy,
        # reseeded inside), then build the model on the CPU, so the same seed gives the
        # same initial weights as the notebooks.
        torch.manual_seed(cfg.seed)
        torch.cuda.manual_seed_all(cfg.seed)
        np.random.seed(cfg.seed)
        initial = build_model(cfg.model.name, cfg.model.width, dataset.num_classes, dataset.channels)
        key = shape_key(cfg, device, self.precision)
        if _engine is None or _engine.key != key:
            drop_engine()
            _engine = Engine(key, cfg, device, self.autocast_dtype, dataset, initial)
        engine = self.engine = _engine
        engine.start_job(cfg, initial)
        engine.jobs += 1
        log.info(f"engine: {'warm, job ' + str(engine.jobs) + ' on it' if engine.jobs > 1 else 'new'} (pid {os.getpid()})")
        self.model, self.net, self.fast_net = engine.model, engine.net, engine.fast_net
        self.optimizer, self.step, self.graphed = engine.optimizer, engine.step, engine.graphed
        self.use_compile, self.use_graphs = engine.use_compile, engine.use_graphs
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

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self):
        """Snapshot the full training state to host memory now; write it in the background."""
        self.saver.save(self.checkpoint_path, records.to_cpu({
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "value_dir": self.step.per_parameter(self.step.value_dir),
            "data_rng": self.data_rng.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.cuda else None,
            "numpy_rng": np.random.get_state(), "state": self.state,
        }))

    def load_checkpoint(self):
        try:
            ckpt = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        except (RuntimeError, EOFError, pickle.UnpicklingError) as e:  # truncated or garbled
            corrupt, n = self.checkpoint_path.with_name(records.CHECKPOINT + ".corrupt"), 1
            while corrupt.exists():  # keep every bad file for inspection
                corrupt, n = corrupt.with_name(f"{records.CHECKPOINT}.corrupt{n}"), n + 1
            os.replace(self.checkpoint_path, corrupt)
            log.warning(f"unreadable checkpoint {self.checkpoint_path} ({str(e).splitlines()[0]}): "
                        f"moved to {corrupt.name}; starting over from epoch 0")
            return
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        for view, saved in zip(self.step.per_parameter(self.step.value_dir), ckpt["value_dir"]):
            view.copy_(saved)
        self.data_rng.set_state(ckpt["data_rng"].cpu())
        torch.set_rng_state(ckpt["torch_rng"].cpu())
        if self.cuda and ckpt["cuda_rng"] is not None:
            torch.cuda.set_rng_state_all([s.cpu() for s in ckpt["cuda_rng"]])
        np.random.set_state(ckpt["numpy_rng"])
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
                 f"{' compile' if self.use_compile else ''}{' cuda-graphs' if self.use_graphs else ''} | {self.run_dir}")
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
        cfg, t, state = self.cfg, self.cfg.train, self.state
        history = state["history"]
        final_acc = history["test_acc"][-1] if history["test_acc"] and state["status"] == "completed" else None
        best_acc = state["best_acc"] if history["test_acc"] else None
        result = {
            "status": state["status"],
            "width_mult": float(cfg.model.width), "lr": float(cfg.lr), "noise_rate": float(cfg.noise.rate),
            "lambda": float(cfg.lam), "seed": int(cfg.seed),
            "test_acc": final_acc, "test_error": None if final_acc is None else 1 - final_acc,
            "best_acc": best_acc, "best_error": None if best_acc is None else 1 - best_acc,
            "avg_cos_struct_value": (float(np.mean([r["cos_struct_value"] for r in state["metrics"]]))
                                     if state["metrics"] else None),
            "time_seconds": state["elapsed"], "history": history,
            "model": cfg.model.name, "dataset": self.dataset.name, "noise": cfg.noise.name,
            "epochs": int(t.epochs), "batch_size": int(t.batch_size), "value_every": int(t.value_every),
            "precision": self.precision, "epochs_completed": state["epoch"],
            "code_version": records.code_version(), "torch_version": torch.__version__,
            "host": platform.node(), "device_name": torch.cuda.get_device_name(self.device) if self.cuda else "cpu",
            "overrides": self.overrides, "config": record(cfg), "error": None,
            "fingerprint": fingerprint(cfg),
        }
        self.saver.wait()
        records.write_json(self.run_dir / records.RESULT, result)
        if self.checkpoint_path.exists():
            os.unlink(self.checkpoint_path)  # result.json holds everything a finished run needs
        log.info(f"{state['status']}: best error {result['best_error']} | final error {result['test_error']} | "
                 f"mean cos {result['avg_cos_struct_value']} | {_fmt_seconds(state['elapsed'])}")
        return result


def train(cfg, run_dir, overrides=()):
    """Train one configuration in `run_dir` (resuming if a checkpoint is there)."""
    trainer = None
    try:
        trainer = Trainer(cfg, run_dir, overrides)
        return trainer.fit()
    except BaseException:
        if trainer is not None:
            trainer.saver.settle()
        drop_engine()  # its state is undefined now; the next job builds a fresh one
        raise
