"""The dual-gradient step.

    g_struct = grad CE(f(x), y_noisy)                 every step
    g_value  = grad CE(f(x), y_clean)                 every K steps, cached in between
    g        = (1 - lam) * g_struct / (|g_struct| + eps) + lam * g_value / (|g_value| + eps)
    SGD(momentum, weight decay) steps with g

All parameter gradients live in one flat buffer (each p.grad is a view into it), so the
whole-model norms, the cosine and the mix are a handful of kernels, and nothing in the
step waits for the host: losses and cosines are summed on the device and read once per
epoch. A refresh step does a second forward pass in train mode before the clean-label
backward, as the notebooks do (so BatchNorm's running statistics see that batch twice).
"""

import torch
import torch.nn.functional as F

EPS = 1e-12


def flat_grad_buffer(params):
    """Point every p.grad at a slice of one zeroed flat buffer and return the buffer.
    Autograd then accumulates into the buffer in place. Each slice takes its parameter's
    strides (channels_last weights included), so gradients keep the layout autograd
    produces them in. The whole-model norm and dot product do not depend on the order."""
    flat = torch.zeros(sum(p.numel() for p in params), device=params[0].device)
    offset = 0
    for p in params:
        assert p.is_contiguous() or p.is_contiguous(memory_format=torch.channels_last)
        p.grad = flat.as_strided(p.shape, p.stride(), offset)
        offset += p.numel()
    return flat


class DualGradientStep:
    """step(images, y_noisy, y_clean, refresh_value): one update of `optimizer`'s
    parameters; refresh_value=True recomputes the cached clean-label direction first."""

    def __init__(self, net, optimizer, lam, autocast_dtype=None):
        self.net = net                  # uint8 images -> logits (may be torch.compile'd)
        self.optimizer = optimizer
        self.autocast_dtype = autocast_dtype
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.grad = flat_grad_buffer(self.params)
        self.struct_grad = torch.zeros_like(self.grad)
        self.value_dir = torch.zeros_like(self.grad)   # cached unit clean-label gradient
        # summed over the steps of an epoch: loss on noisy labels, loss on clean labels,
        # cosine(g_struct, g_value), number of steps
        self.sums = torch.zeros(4, device=self.grad.device)
        # lam and 1 - lam as device scalars, so a captured CUDA graph reads them at replay
        # and a warm worker's next job can change lam without recapturing.
        self.lam = torch.zeros((), device=self.grad.device)
        self.one_minus_lam = torch.zeros((), device=self.grad.device)
        self.set_lam(lam)

    def set_lam(self, lam):
        # 1 - lam in float64 on the host, then rounded to float32 once, as the python-float
        # factor is: the same bits as the notebooks' (1 - lam) * g
        self.lam.fill_(float(lam))
        self.one_minus_lam.fill_(1 - float(lam))

    def reset(self, lam):
        """A fresh run on the same tensors: no cached clean-label direction, no sums."""
        self.set_lam(lam)
        self.value_dir.zero_()
        self.sums.zero_()

    def logits(self, images_u8):
        device_type = images_u8.device.type
        with torch.autocast(device_type, self.autocast_dtype, enabled=self.autocast_dtype is not None):
            return self.net(images_u8).float()

    def __call__(self, images_u8, y_noisy, y_clean, refresh_value):
        self.grad.zero_()
        logits = self.logits(images_u8)
        loss_noisy = F.cross_entropy(logits, y_noisy)
        loss_clean = F.cross_entropy(logits.detach(), y_clean)
        loss_noisy.backward()
        g_struct = self.grad
        if refresh_value:
            g_struct = self.struct_grad
            g_struct.copy_(self.grad)
            self.grad.zero_()
            F.cross_entropy(self.logits(images_u8), y_clean).backward()
            torch.div(self.grad, torch.linalg.vector_norm(self.grad) + EPS, out=self.value_dir)
        struct_dir = torch.div(g_struct, torch.linalg.vector_norm(g_struct) + EPS, out=self.grad)
        cosine = torch.dot(struct_dir, self.value_dir)
        # The mix, in the notebooks' order of operations: on the CPU in fp32 this matches
        # their loop to the bit, which matters because training amplifies rounding.
        self.grad.mul_(self.one_minus_lam).add_(self.lam * self.value_dir)
        self.optimizer.step()
        self.sums += torch.stack([loss_noisy.detach(), loss_clean, cosine, torch.ones_like(cosine)])

    def per_parameter(self, flat):
        """A flat buffer as one tensor per parameter (layout-independent, for checkpoints)."""
        return [flat.as_strided(p.shape, p.grad.stride(), p.grad.storage_offset()) for p in self.params]

    def take_sums(self):
        """Epoch means (loss_noisy, loss_clean, cosine), and reset; one host sync."""
        *sums, steps = self.sums.tolist()
        self.sums.zero_()
        return tuple(x / max(steps, 1) for x in sums)


class GraphedStep:
    """Replays a DualGradientStep as CUDA graphs: one for plain steps, one for refresh
    steps, each captured on static input buffers. The optimizer's learning rate (and
    momentum, weight decay) are baked into a capture, so there is a pair of graphs per
    value: captured at the first step with it, kept for later jobs of a warm worker."""

    MAX_KEPT = 6  # hyper-parameter values whose graphs are kept (a run uses three lrs)

    def __init__(self, step, batch_shape):
        self.step = step
        dev = step.grad.device
        self.images = torch.zeros(batch_shape, dtype=torch.uint8, device=dev)
        self.y_noisy = torch.zeros(batch_shape[0], dtype=torch.long, device=dev)
        self.y_clean = torch.zeros(batch_shape[0], dtype=torch.long, device=dev)
        self.graphs = {}  # (lr, momentum, weight_decay) per group -> {refresh: graph}

    def _hyper(self):
        return tuple((g["lr"], g["momentum"], g["weight_decay"]) for g in self.step.optimizer.param_groups)

    def _capture(self):
        graphs = {}
        for refresh in (False, True):
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):  # records the step; runs none of it
                self.step(self.images, self.y_noisy, self.y_clean, refresh)
            graphs[refresh] = graph
        return graphs

    def __call__(self, images_u8, y_noisy, y_clean, refresh_value):
        hyper = self._hyper()
        if hyper not in self.graphs:
            if len(self.graphs) >= self.MAX_KEPT:
                del self.graphs[next(iter(self.graphs))]  # the oldest
            self.graphs[hyper] = self._capture()
        self.images.copy_(images_u8, non_blocking=True)
        self.y_noisy.copy_(y_noisy, non_blocking=True)
        self.y_clean.copy_(y_clean, non_blocking=True)
        self.graphs[hyper][bool(refresh_value)].replay()
