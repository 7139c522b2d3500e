"""What identifies a run, defined once: the keys that change what is computed, a config's
fingerprint, a job's folder name and the shape of engine a warm worker can reuse.

Torch-free: the job's own checks (dgl.preflight), the Hydra plugins and the analysis all
use it. A config here is a plain nested dict (an OmegaConf config is converted).
"""

import hashlib
import json

# Keys that change no computed number: where things are read or written, and the speed
# and reproducibility options (they change results only by rounding).
PLACE_AND_SPEED = ("name", "data.root", "data.download", "data.on_device", "train.device",
                   "train.compile", "train.cuda_graphs", "train.compile_cache", "train.deterministic",
                   "train.checkpoint_every", "train.progress")
# Keys that only select a value recorded under its own key: lam = lam_table[noise.rate][lam_index].
SELECTORS = ("lam_table", "lam_index")
# Left out of a run's fingerprint, so runs that differ only in these are the same run.
NOT_COMPUTATIONAL = PLACE_AND_SPEED + SELECTORS
# Overrides left out of a job folder's name (`experiment` names the sweep folder instead).
# Selectors stay in: two lam_index values are two folders.
NOT_IN_FOLDER_NAME = PLACE_AND_SPEED + ("experiment",)
# What a warm engine is built for: jobs equal in these reuse its compiled model and graphs.
SHAPE_KEYS = ("model.name", "model.width", "data", "train.batch_size", "train.precision",
              "train.compile", "train.cuda_graphs", "train.deterministic")

MAX_NAME_BYTES = 200  # most filesystems allow 255 bytes per folder name; leave room for suffixes


def plain(cfg):
    """A config as a plain nested dict (resolved), without Hydra's own node."""
    if not isinstance(cfg, dict):
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(cfg, resolve=True)
    tree = json.loads(json.dumps(cfg))
    tree.pop("hydra", None)
    return tree


def get(tree, dotted, default=None):
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return default
        tree = tree[part]
    return tree


def resolve_precision(precision, device_type):
    """train.precision with `auto` decided: bf16 where the run trains on a GPU, else fp32."""
    if precision != "auto":
        return precision
    return "bf16" if device_type == "cuda" else "fp32"


def recorded(cfg, device_type):
    """The config as a run records it (config.yaml, result.json): resolved, precision decided."""
    tree = plain(cfg)
    tree["train"]["precision"] = resolve_precision(tree["train"]["precision"], device_type)
    return tree


def deterministic(recorded_cfg):
    """train.deterministic of a recorded config; a record from before the key: false."""
    return bool(get(recorded_cfg, "train.deterministic", False))


def computational(cfg):
    """The config without NOT_COMPUTATIONAL keys: what a job folder answers for."""
    tree = plain(cfg)
    for dotted in NOT_COMPUTATIONAL:
        *parents, leaf = dotted.split(".")
        node = get(tree, ".".join(parents)) if parents else tree
        if isinstance(node, dict):
            node.pop(leaf, None)
    return tree


def fingerprint(recorded_cfg):
    """A short hash of a recorded config's computational part: equal for two configs that
    compute the same run."""
    text = json.dumps(computational(recorded_cfg), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(a, b, prefix=""):
    """[(dotted key, value in a, value in b)] where two nested dicts differ."""
    out = []
    for key in sorted(set(a) | set(b), key=str):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += differences(x, y, f"{prefix}{key}.")
        elif x != y:
            out.append((f"{prefix}{key}", x, y))
    return out


def describe(diffs, limit=3):
    """'model.name: resnet18 there, tv_resnet18 here; ...' for the first few differences."""
    text = "; ".join(f"{k}: {x} there, {y} here" for k, x, y in diffs[:limit])
    return text + (f"; and {len(diffs) - limit} more" if len(diffs) > limit else "")


def shape(cfg, precision=None):
    """The SHAPE_KEYS values of a config (precision: the decided one, where known)."""
    tree = plain(cfg)
    values = [json.dumps(get(tree, key), sort_keys=True) for key in SHAPE_KEYS]
    if precision is not None:
        values[SHAPE_KEYS.index("train.precision")] = precision
    return tuple(values)


def folder_name(overrides, experiment=None):
    """A job's folder name: its overrides sorted and joined by commas (Hydra's
    override_dirname) without NOT_IN_FOLDER_NAME keys, after `experiment=NAME` when given
    (single runs), or `default`. A name past MAX_NAME_BYTES keeps a readable prefix and
    ends in a hash of the whole name; the overrides themselves are always in the job's
    .hydra/overrides.yaml and result.json."""
    kept = sorted(without(overrides, NOT_IN_FOLDER_NAME))
    name = ",".join(p for p in (f"experiment={experiment}" if experiment else "", ",".join(kept)) if p)
    name = name.replace("/", "_") or "default"
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    prefix = name.encode()[:MAX_NAME_BYTES - 40].decode(errors="ignore").rstrip(",")
    return f"{prefix}...{digest}"


def job_key(overrides) -> frozenset:
    """What finds a job's folder among a sweep's: its overrides without the place and speed
    keys, so that a rerun from another checkout or with another data.root finds its runs."""
    return frozenset(without(overrides, PLACE_AND_SPEED))


def without(overrides, keys) -> list:
    """The overrides (in order) whose key is not one of ``keys``."""
    return [o for o in overrides if override_key(o) not in keys]


def override_key(override):
    """`model.width` of `model.width=2`, `+a.b@pkg=1`, `~key`: Hydra's key_or_group."""
    return override.split("=", 1)[0].lstrip("+~").split("@", 1)[0]
