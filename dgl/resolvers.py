"""OmegaConf resolvers used by conf/ (registered when `dgl` is imported)."""

from omegaconf import OmegaConf

from dgl.identity import folder_name, override_key


def lam_grid(table, noise_rate, index):
    """The index-th lambda of a per-noise-rate lambda table (Q1: the grid depends on the noise)."""
    key = str(float(noise_rate))
    if key not in table:
        raise ValueError(f"noise.rate={noise_rate} has no lambda grid (allowed: {', '.join(table)})")
    grid = table[key]
    if not 0 <= int(index) < len(grid):
        raise ValueError(f"lam_index={index} is outside the grid of {len(grid)} lambdas for noise.rate={noise_rate}")
    return grid[int(index)]


def dirname(overrides, experiment=None):
    """A job's folder name from its override list (the rule: dgl.identity.folder_name)."""
    return folder_name(list(overrides), experiment)


def lam_dirname(lam, overrides):
    """A folder name that starts with the resolved lambda (a sweep over lam_index shows it),
    unless lam itself is one of the overrides (an adaptive sweep places lam)."""
    name = folder_name(list(overrides))
    return name if "lam" in map(override_key, overrides) else f"lam={lam},{name}"


def tenth(epochs):
    """Every 10% of the epochs (the notebooks evaluate every 10 of 100), at least every epoch."""
    return max(1, int(epochs) // 10)


def register():
    for name, fn in (("dgl.dirname", dirname), ("dgl.lam_dirname", lam_dirname), ("dgl.lam_grid", lam_grid),
                     ("dgl.tenth", tenth)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
