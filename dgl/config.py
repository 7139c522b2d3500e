"""What a valid config is, and what identifies a run.

- The schema: dataclasses registered in Hydra's ConfigStore (`dgl_schema`, the first entry
  of conf/config.yaml's defaults), so Hydra itself refuses unknown keys and wrong types
  while it composes. The values live in the YAML files under conf/; the schema only types them.
- validate(): ranges, choices and cross-key rules, checked before anything is loaded.
- computational() / fingerprint(): the part of a config that changes what is computed; two
  configs with the same fingerprint produce the same run, so they may share a job folder.

Every problem is one line that names the key, the value and what is allowed.
"""

import dataclasses
import difflib
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf


class ConfigError(ValueError):
    pass


# ------------------------------------------------------------------------------ schema

@dataclass
class ModelConfig:
    name: str = MISSING
    width: float = MISSING


@dataclass
class DataConfig:
    name: str = MISSING
    root: Optional[str] = None
    download: bool = False
    on_device: bool = True
    n_train: Optional[int] = None     # data=synthetic only
    n_test: Optional[int] = None
    image_size: Optional[int] = None


@dataclass
class NoiseConfig:
    name: str = MISSING
    rate: float = MISSING


@dataclass
class TrainConfig:
    epochs: int = MISSING
    batch_size: int = MISSING
    value_every: int = MISSING
    eval_every: int = MISSING
    momentum: float = MISSING
    weight_decay: float = MISSING
    milestones: List[float] = MISSING
    gamma: float = MISSING
    device: str = MISSING
    precision: str = MISSING
    compile: bool = MISSING
    cuda_graphs: bool = MISSING
    compile_cache: Optional[str] = None
    checkpoint_every: int = MISSING
    progress: bool = MISSING


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = MISSING
    lam: float = MISSING
    lr: float = MISSING
    seed: int = MISSING
    # Q1's lambda grid depends on the noise rate: lam = lam_table[noise.rate][lam_index]
    lam_table: Optional[Dict[str, List[float]]] = None
    lam_index: Optional[int] = None


def register_schema():
    ConfigStore.instance().store(name="dgl_schema", node=Config)


# Keys that do not change what is computed: where the data is read from, and the speed
# options (which change results only by rounding). They stay out of the fingerprint, and
# every key left out of job folder names (conf/config.yaml) must be one of them.
NOT_COMPUTATIONAL = ("name", "lam_table", "lam_index", "data.root", "data.download",
                     "data.on_device", "train.device", "train.compile", "train.cuda_graphs", "train.compile_cache",
                     "train.checkpoint_every", "train.progress")

MODELS, DATASETS, NOISES = ("resnet18", "tv_resnet18"), ("cifar10", "fashion_mnist", "synthetic"), (
    "symmetric", "asymmetric", "none")
SYNTHETIC_ONLY = ("n_train", "n_test", "image_size")


# --------------------------------------------------------------------------- validation

def _check(ok, key, value, allowed):
    if not ok:
        raise ConfigError(f"{key}={value} is not allowed (allowed: {allowed})")


def _finite(x, key, allowed):
    _check(math.isfinite(x), key, x, allowed)
    return x


def _check_keys(node, schema, prefix=""):
    """Keys the schema does not have (Hydra lets `+key=value` add them even to a typed config)."""
    names = {f.name: f.type for f in dataclasses.fields(schema)}
    for key in node:
        if key not in names:
            raise ConfigError(unknown_key(f"{prefix}{key}"))
        if dataclasses.is_dataclass(names[key]):
            _check_keys(node[key], names[key], f"{prefix}{key}.")


def validate(cfg):
    """Raise ConfigError (one line) for the first value outside what is allowed. Types are
    the schema's job (Hydra checks them while composing); this checks keys Hydra let in,
    ranges, choices and cross-key rules."""
    _check_keys(cfg, Config)
    lam = _finite(cfg.lam, "lam", "[0, 1]")
    _check(0 <= lam <= 1, "lam", lam, "[0, 1]")
    _check(_finite(cfg.lr, "lr", "> 0") > 0, "lr", cfg.lr, "> 0")
    _check(0 <= cfg.seed < 2**32, "seed", cfg.seed, "an integer in [0, 2**32)")
    _check(cfg.model.name in MODELS, "model", cfg.model.name, ", ".join(MODELS))
    width = _finite(cfg.model.width, "model.width", "> 0")
    _check(width > 0, "model.width", width, "> 0")
    if cfg.model.name == "tv_resnet18":
        _check(width == 1, "model.width", width, "1 for tv_resnet18 (fixed width); use model=resnet18")
    else:
        _check(int(64 * width) >= 1, "model.width", width, ">= 1/64, at least one channel")

    d = cfg.data
    _check(d.name in DATASETS, "data", d.name, ", ".join(DATASETS))
    for key in SYNTHETIC_ONLY:
        if d.name == "synthetic":
            _check(d[key] is not None and d[key] >= 1, f"data.{key}", d[key], "an integer >= 1")
        else:
            _check(d[key] is None, f"data.{key}", d[key], "only with data=synthetic")

    n = cfg.noise
    _check(n.name in NOISES, "noise", n.name, ", ".join(NOISES))
    if n.name == "none":
        _check(n.rate == 0, "noise.rate", n.rate, "0 with noise=none")
    else:
        _check(0 <= _finite(n.rate, "noise.rate", "[0, 1)") < 1, "noise.rate", n.rate, "[0, 1)")
    if n.name == "asymmetric":
        _check(d.name != "fashion_mnist", "noise", "asymmetric", "symmetric or none with "
               "data=fashion_mnist (the asymmetric map is CIFAR-10's)")

    t = cfg.train
    for key in ("epochs", "batch_size", "value_every", "eval_every", "checkpoint_every"):
        _check(t[key] >= 1, f"train.{key}", t[key], "an integer >= 1")
    _check(0 <= _finite(t.momentum, "train.momentum", "[0, 1)") < 1, "train.momentum", t.momentum, "[0, 1)")
    _check(_finite(t.weight_decay, "train.weight_decay", ">= 0") >= 0, "train.weight_decay",
           t.weight_decay, ">= 0")
    _check(0 < _finite(t.gamma, "train.gamma", "(0, 1]") <= 1, "train.gamma", t.gamma, "(0, 1]")
    milestones = list(t.milestones)
    _check(all(0 < m <= 1 for m in milestones), "train.milestones", milestones,
           "fractions of train.epochs in (0, 1]")
    _check(t.device in ("auto", "cpu", "cuda"), "train.device", t.device, "auto, cpu, cuda")
    _check(t.precision in ("auto", "bf16", "fp32"), "train.precision", t.precision, "auto, bf16, fp32")
    if t.device == "cuda":
        import torch

        _check(torch.cuda.is_available(), "train.device", "cuda",
               "auto, cpu: no CUDA device is visible here")


# ----------------------------------------------------------------------------- identity

def resolved_precision(cfg):
    """train.precision with `auto` decided: bf16 where the run trains on a GPU, else fp32."""
    if cfg.train.precision != "auto":
        return cfg.train.precision
    device = cfg.train.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return "bf16" if device == "cuda" else "fp32"


def computational(cfg):
    """The config as a plain dict without NOT_COMPUTATIONAL keys (and without `hydra`)."""
    tree = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else json.loads(
        json.dumps(cfg))
    tree.pop("hydra", None)
    for dotted in NOT_COMPUTATIONAL:
        *parents, leaf = dotted.split(".")
        node = tree
        for p in parents:
            node = node.get(p, {})
        node.pop(leaf, None)
    return tree


def record(cfg):
    """The resolved config as a job records it (config.yaml, result.json): train.precision decided."""
    tree = OmegaConf.to_container(cfg, resolve=True)
    tree["train"]["precision"] = resolved_precision(cfg)
    return tree


def identity(cfg):
    """computational(cfg) with train.precision decided: what a job folder answers for."""
    tree = computational(cfg)
    tree["train"]["precision"] = resolved_precision(cfg)
    return tree


def fingerprint(cfg):
    """A short hash of identity(cfg): equal for two configs that compute the same run."""
    return hashlib.sha256(json.dumps(identity(cfg), sort_keys=True).encode()).hexdigest()[:16]


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



def one_line(exc):
    """A Hydra/OmegaConf composition error (bad override, wrong type, unknown key or group
    option) as one line naming the key and what is allowed; None for any other exception."""
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
    )
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    cause = exc.__cause__
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, MissingConfigException):
        options = f" (allowed: {', '.join(exc.options)})" if exc.options else ""
        return first + options
    if isinstance(exc, OverrideParseException):
        return f"cannot parse the command line: {first}"
    if not isinstance(exc, ConfigCompositionException):
        return None
    override = first.split()[-1].rstrip(".").strip("'") if "override" in first else first
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
        return unknown_key(cause.full_key)
    if isinstance(cause, ValidationError):
        return f"{override} is not allowed (allowed: {kind_of(cause.full_key)})"
    return first + (f": {str(cause).splitlines()[0]}" if cause is not None else "")


def _schema_field(dotted):
    """The schema's type of a dotted key, or None."""
    node = Config
    for part in dotted.split("."):
        fields = {f.name: f.type for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else {}
        if part not in fields:
            return None
        node = fields[part]
    return node


def kind_of(dotted):
    names = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}
    t = _schema_field(dotted)
    return names.get(t, str(t).replace("typing.", ""))


def unknown_key(dotted):
    *parents, leaf = dotted.split(".")
    node = _schema_field(".".join(parents)) if parents else Config
    keys = [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []
    close = difflib.get_close_matches(leaf, keys, n=1)
    hint = f"did you mean {'.'.join([*parents, close[0]])}? " if close else ""
    return f"{dotted} is not a config key ({hint}allowed: {', '.join(keys)})"
