"""What a process keeps warm between jobs: the dataset on the device, and an Engine (the
model, its compiled module, the optimizer, the flat gradient buffers, the captured CUDA
graphs) for one shape of job (dgl.identity.SHAPE_KEYS). A job of the same shape writes its
initial weights and a fresh optimizer state into the same tensors, so the compiled code
and the graphs stay valid and its first epoch costs a steady one.

Also here: the process-wide GPU settings a job needs before anything is compiled or
captured (deterministic kernels, the compile cache).
"""

import os

import torch
from omegaconf import OmegaConf

from dgl import identity
from dgl.data import Normalize, load_dataset
from dgl.dual_step import DualGradientStep, GraphedStep

# cuBLAS reads this when it starts (the first matmul of the process); deterministic mode
# needs it, and setting it in every process lets a warm worker switch modes between jobs.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def set_kernels(deterministic):
    """Deterministic kernels on or off, for everything this process computes from now on.
    On: cuDNN's deterministic algorithms without autotuning, and torch's deterministic
    implementations (an op that has none raises). New tensors are not NaN-filled: the step
    reads no uninitialised memory, and filling costs ~7% of a step. Off: cuDNN autotunes
    its fastest kernels for our fixed shapes."""
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic)
    torch.utils.deterministic.fill_uninitialized_memory = False


def use_compile_cache(path):
    """Keep Inductor's and Triton's caches in `path` (shared by a sweep's jobs), not /tmp."""
    if path:
        path = os.path.expanduser(str(path))
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = path
        os.environ["TRITON_CACHE_DIR"] = os.path.join(path, "triton")


class Engine:
    """The trainable state of one shape of job, reused by the next job of that shape."""

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
        self.jobs += 1
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


class WarmState:
    """This process's last dataset and last engine; one of each at a time."""

    def __init__(self):
        self.data_key, self.dataset, self.tensors, self.engine = None, None, None, None

    def data(self, cfg, device):
        """The dataset, with its uint8 images and clean labels where the batches are cut
        (the device, unless data.on_device=false), and the test set on the device."""
        key = (OmegaConf.to_yaml(cfg.data, resolve=True), str(device))
        if key != self.data_key:
            self.data_key = self.dataset = self.tensors = None
            dataset = load_dataset(cfg.data)
            storage = device if cfg.data.on_device else torch.device("cpu")
            self.tensors = {
                "train_images": dataset.train_images.to(storage),
                "labels_clean": torch.from_numpy(dataset.train_labels).to(storage),
                "test_images": dataset.test_images.to(device),
                "test_labels": torch.from_numpy(dataset.test_labels).to(device)}
            self.data_key, self.dataset = key, dataset
        return self.dataset, self.tensors

    def engine_for(self, cfg, device, precision, autocast_dtype, dataset, initial_model):
        """The engine for this job's shape (built around initial_model if there is none),
        reset to start the job."""
        key = (*identity.shape(cfg, precision), str(device))
        if self.engine is None or self.engine.key != key:
            self.drop()
            self.engine = Engine(key, cfg, device, autocast_dtype, dataset, initial_model)
        self.engine.start_job(cfg, initial_model)
        return self.engine

    def drop(self):
        """Free the engine (and its compiled code): on a shape change, or after a failure."""
        engine, self.engine = self.engine, None
        if engine is None:
            return
        if engine.use_compile:
            torch._dynamo.reset()  # its code cache would count the next model as a recompile
        if engine.device.type == "cuda":
            torch.cuda.empty_cache()


WARM = WarmState()
