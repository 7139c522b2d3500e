"""The notebooks' training loop, restated plainly and independently of `dgl`: the
reference that the equivalence test compares the trainer with, and the baseline that
benchmarks/bench.py times. Keep it as the notebooks wrote it (flatten, normalise, mix,
assign, step; per-step .item() on the cosine), not as fast as it could be."""

import torch
from torch import nn
from torch.nn.utils import parameters_to_vector


def notebook_loop(model, epochs_of_batches, lam, K, lr, milestones, device="cpu", on_step=None):
    """epochs_of_batches: for each epoch an iterable of (inputs, noisy, clean) batches
    (normalised float inputs). Returns the mean cosine per epoch."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    criterion = nn.CrossEntropyLoss()
    cached_g_value, global_step, cos_history = None, 0, []
    for batches in epochs_of_batches:
        model.train()
        epoch_cos = []
        for inputs, batch_noisy, batch_clean in batches:
            inputs = inputs.to(device, non_blocking=True)
            batch_noisy, batch_clean = batch_noisy.to(device), batch_clean.to(device)
            optimizer.zero_grad()
            loss_struct = criterion(model(inputs), batch_noisy)
            loss_struct.backward(retain_graph=True)
            g_struct = parameters_to_vector([p.grad for p in model.parameters()]).clone()
            if global_step % K == 0 or cached_g_value is None:
                optimizer.zero_grad()
                criterion(model(inputs), batch_clean).backward()
                cached_g_value = parameters_to_vector([p.grad for p in model.parameters()]).clone()
            g_struct_norm = g_struct / (g_struct.norm() + 1e-12)
            g_value_norm = cached_g_value / (cached_g_value.norm() + 1e-12)
            epoch_cos.append((g_struct_norm @ g_value_norm).item())
            g_mix = (1 - lam) * g_struct_norm + lam * g_value_norm
            optimizer.zero_grad()
            idx = 0
            for p in model.parameters():
                p.grad = g_mix[idx:idx + p.numel()].view(p.shape).clone()
                idx += p.numel()
            optimizer.step()
            global_step += 1
            if on_step is not None:
                on_step(global_step)
        scheduler.step()
        cos_history.append(sum(epoch_cos) / max(len(epoch_cos), 1))
    return cos_history
