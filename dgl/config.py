"""What a valid config is.

- The schema: dataclasses registered in Hydra's ConfigStore (`dgl_schema`, the first entry
  of conf/config.yaml's defaults), so Hydra itself refuses unknown keys and wrong types
  while it composes. The values live in the YAML files under conf/; the schema only types them.
- validate(): ranges, choices and cross-key rules, checked before anything is loaded.
- one_line(): Hydra's composition errors as one line.

Every problem is one line that names the key, the value and what is allowed. What
identifies a run (which keys, its fingerprint, its folder) is dgl/identity.py.
"""

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class ConfigError(ValueError):
    pass


# ------------------------------------------------------------------------------ schema

LAM_RANGE = (0.0, 1.0)  # the weight of the clean gradient: lam = 1 uses it alone


@dataclass
class ModelConfig:
    name: str = MISSING
    width: float = MISSING


@dataclass
class DataConfig:
    name: str = MISSING
    root: str | None = None
    download: bool = False
    on_device: bool = True
    n_train: int | None = None     # data=synthetic only
    n_test: int | None = None
    image_size: int | None = None


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
    milestones: list[float] = MISSING
    gamma: float = MISSING
    device: str = MISSING
    precision: str = MISSING
    compile: bool = MISSING
    cuda_graphs: bool = MISSING
    compile_cache: str | None = None
    deterministic: bool = MISSING
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
    lam_table: dict[str, list[float]] | None = None
    lam_index: int | None = None


def register_schema():
    ConfigStore.instance().store(name="dgl_schema", node=Config)


SYNTHETIC_ONLY = ("n_train", "n_test", "image_size")


# --------------------------------------------------------------------------- validation

def _check(ok, key, value, allowed):
    if not ok:
        raise ConfigError(f"{key}={value} is not allowed (allowed: {allowed})")


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
    _check(math.isfinite(cfg.lam) and LAM_RANGE[0] <= cfg.lam <= LAM_RANGE[1], "lam", cfg.lam,
           f"[{LAM_RANGE[0]:g}, {LAM_RANGE[1]:g}]")
    _check(math.isfinite(cfg.lr) and cfg.lr > 0, "lr", cfg.lr, "> 0")
    _check(0 <= cfg.seed < 2**32, "seed", cfg.seed, "an integer in [0, 2**32)")
    from dgl.data import DATASETS
    from dgl.models import MODELS
    from dgl.noise import NOISES

    _check(cfg.model.name in MODELS, "model", cfg.model.name, ", ".join(MODELS))
    width = cfg.model.width
    _check(math.isfinite(width) and width > 0, "model.width", width, "> 0")
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
        _check(math.isfinite(n.rate) and 0 <= n.rate < 1, "noise.rate", n.rate, "[0, 1)")
    if n.name == "asymmetric":
        _check(d.name != "fashion_mnist", "noise", "asymmetric", "symmetric or none with "
               "data=fashion_mnist (the asymmetric map is CIFAR-10's)")

    t = cfg.train
    for key in ("epochs", "batch_size", "value_every", "eval_every", "checkpoint_every"):
        _check(t[key] >= 1, f"train.{key}", t[key], "an integer >= 1")
    _check(math.isfinite(t.momentum) and 0 <= t.momentum < 1, "train.momentum", t.momentum, "[0, 1)")
    _check(math.isfinite(t.weight_decay) and t.weight_decay >= 0, "train.weight_decay", t.weight_decay, ">= 0")
    _check(math.isfinite(t.gamma) and 0 < t.gamma <= 1, "train.gamma", t.gamma, "(0, 1]")
    milestones = list(t.milestones)
    _check(all(0 < m <= 1 for m in milestones), "train.milestones", milestones,
           "fractions of train.epochs in (0, 1]")
    _check(t.device in ("auto", "cpu", "cuda"), "train.device", t.device, "auto, cpu, cuda")
    _check(t.precision in ("auto", "bf16", "fp32"), "train.precision", t.precision, "auto, bf16, fp32")
    if t.device == "cuda":
        import torch

        _check(torch.cuda.is_available(), "train.device", "cuda",
               "auto, cpu: no CUDA device is visible here")


def one_line(exc):
    """A Hydra/OmegaConf composition error (bad override, wrong type, unknown key or group
    option) as one line naming the key and what is allowed; None for any other exception."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
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


def device_type(cfg):
    """`cuda` or `cpu`: where a job with this config trains (train.device with `auto` decided)."""
    if cfg.train.device != "auto":
        return cfg.train.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose(overrides=()):
    """The job config `python train.py OVERRIDES` would run (no `hydra` node), composed in-process."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))
