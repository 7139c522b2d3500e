"""OmegaConf resolvers used by conf/ (registered when `dgl` is imported)."""

import hashlib

from omegaconf import OmegaConf

MAX_NAME_BYTES = 200  # most filesystems allow 255 bytes per folder name; leave room for suffixes


def dirname(override_dirname, experiment=None):
    """A job's folder name: its overrides (Hydra's override_dirname), after `experiment=NAME`
    when given (single runs), or `default`. A name past MAX_NAME_BYTES keeps a readable
    prefix and ends in a hash of the whole name; the overrides themselves are always in
    the job's .hydra/overrides.yaml and result.json."""
    name = ",".join(p for p in (f"experiment={experiment}" if experiment else "", override_dirname) if p)
    name = name.replace("/", "_") or "default"
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    prefix = name.encode()[:MAX_NAME_BYTES - 40].decode(errors="ignore").rstrip(",")
    return f"{prefix}...{digest}"


def lam_grid(table, noise_rate, index):
    """The index-th lambda of a per-noise-rate lambda table (Q1: the grid depends on the noise)."""
    key = str(float(noise_rate))
    if key not in table:
        raise ValueError(f"noise.rate={noise_rate} has no lambda grid (allowed: {', '.join(table)})")
    grid = table[key]
    if not 0 <= int(index) < len(grid):
        raise ValueError(f"lam_index={index} is outside the grid of {len(grid)} lambdas for noise.rate={noise_rate}")
    return grid[int(index)]


def register():
    for name, fn in (("dgl.dirname", dirname), ("dgl.lam_grid", lam_grid)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
