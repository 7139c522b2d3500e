"""Checks on a composed config, run before anything is loaded or trained. Each problem
is one line that names the key, the value and what is allowed."""

import math


class ConfigError(ValueError):
    pass


def _number(cfg_value, key, allowed):
    try:
        x = float(cfg_value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={cfg_value!r} is not a number (allowed: {allowed})") from None
    if not math.isfinite(x):
        raise ConfigError(f"{key}={cfg_value!r} is not finite (allowed: {allowed})")
    return x


def _check(ok, key, value, allowed):
    if not ok:
        raise ConfigError(f"{key}={value} is not allowed (allowed: {allowed})")


def _int(cfg_value, key, low):
    allowed = f"an integer >= {low}"
    if isinstance(cfg_value, bool) or not isinstance(cfg_value, int):
        raise ConfigError(f"{key}={cfg_value!r} is not allowed (allowed: {allowed})")
    _check(cfg_value >= low, key, cfg_value, allowed)


def _choice(value, key, choices):
    _check(value in choices, key, value, ", ".join(map(str, choices)))


def _cuda_available():
    import torch  # here, not at the top: a job that finds its result done never needs torch

    return torch.cuda.is_available()


def validate(cfg):
    lam = _number(cfg.lam, "lam", "[0, 1]")
    _check(0 <= lam <= 1, "lam", cfg.lam, "[0, 1]")
    lr = _number(cfg.lr, "lr", "> 0")
    _check(lr > 0, "lr", cfg.lr, "> 0")
    _int(cfg.seed, "seed", 0)
    _choice(cfg.model.name, "model", ("resnet18", "tv_resnet18"))
    width = _number(cfg.model.width, "model.width", "> 0")
    _check(width > 0, "model.width", cfg.model.width, "> 0")
    if cfg.model.name == "tv_resnet18":
        _check(width == 1, "model.width", cfg.model.width, "1 for tv_resnet18 (fixed width); use model=resnet18")
    elif int(64 * width) < 1:
        raise ConfigError(f"model.width={cfg.model.width} is not allowed (allowed: >= 1/64, at least one channel)")
    _choice(cfg.data.name, "data", ("cifar10", "fashion_mnist", "synthetic"))
    _choice(cfg.noise.name, "noise", ("symmetric", "asymmetric", "none"))
    rate = _number(cfg.noise.rate, "noise.rate", "[0, 1)")
    _check(0 <= rate < 1, "noise.rate", cfg.noise.rate, "[0, 1)")
    t = cfg.train
    for key, low in (("epochs", 1), ("batch_size", 1), ("value_every", 1), ("eval_every", 1),
                     ("checkpoint_every", 1)):
        _int(t[key], f"train.{key}", low)
    momentum = _number(t.momentum, "train.momentum", "[0, 1)")
    _check(0 <= momentum < 1, "train.momentum", t.momentum, "[0, 1)")
    wd = _number(t.weight_decay, "train.weight_decay", ">= 0")
    _check(wd >= 0, "train.weight_decay", t.weight_decay, ">= 0")
    for m in t.milestones:
        _check(0 < _number(m, "train.milestones", "fractions in (0, 1]") <= 1,
               "train.milestones", list(t.milestones), "fractions of train.epochs in (0, 1]")
    _choice(t.device, "train.device", ("auto", "cpu", "cuda"))
    if t.device == "cuda" and not _cuda_available():
        raise ConfigError("train.device=cuda is not allowed here: no CUDA device is visible (allowed: auto, cpu)")
    _choice(t.precision, "train.precision", ("auto", "bf16", "fp32"))
    for key in ("compile", "cuda_graphs", "progress"):
        _check(isinstance(t[key], bool), f"train.{key}", t[key], "true, false")
    _check(isinstance(cfg.data.on_device, bool), "data.on_device", cfg.data.on_device, "true, false")
