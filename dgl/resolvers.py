"""OmegaConf resolvers used by conf/ (registered when `dgl` is imported)."""

from omegaconf import OmegaConf


def dirname(override_dirname):
    """A job's folder name: its overrides (Hydra's override_dirname), or `default`."""
    return override_dirname.replace("/", "_") or "default"


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
