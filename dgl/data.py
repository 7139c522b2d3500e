"""Datasets as uint8 tensors, and the notebooks' augmentation as tensor operations.

A dataset here is just tensors: images (N, C, H, W) uint8, labels (N,) int64, plus the
normalisation the notebooks use. Augmentation (RandomCrop(32, padding=4) with zero
fill, then a horizontal flip with p=0.5) is one gather over the whole epoch, done on
whatever device holds the images, so the GPU path never touches PIL or a DataLoader.
"""

import gzip
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


class DataError(RuntimeError):
    """A dataset cannot be found or read; the message says where to put it."""


@dataclass
class Dataset:
    name: str
    train_images: torch.Tensor  # (N, C, H, W) uint8
    train_labels: np.ndarray    # (N,) int64, clean
    test_images: torch.Tensor
    test_labels: np.ndarray
    mean: tuple
    std: tuple
    num_classes: int = 10

    @property
    def channels(self):
        return self.train_images.shape[1]


CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)


# ----------------------------------------------------------------------------- CIFAR-10

def _read_cifar_batch(path):
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return images, np.asarray(batch[b"labels"], dtype=np.int64)


def ensure_cifar10(root, download=True):
    """The `cifar-10-batches-py` folder under `root`. When it is absent, torchvision
    downloads (or, given `cifar-10-python.tar.gz` in `root`, checks and extracts) the
    archive; we read the batches ourselves (load_cifar10) because torchvision's md5 check
    of every batch would also reject the tiny CIFAR-format folders the tests write."""
    root = Path(root)
    folder = root / "cifar-10-batches-py"
    if not folder.is_dir():
        hint = (f"data.root: CIFAR-10 not found in {root}; put cifar-10-python.tar.gz "
                f"(https://www.cs.toronto.edu/~kriz/cifar.html) there, or point data.root "
                f"at a folder holding cifar-10-batches-py/")
        if not download:
            raise DataError(hint + " (data.download=false)")
        try:
            import torchvision

            torchvision.datasets.CIFAR10(str(root), train=True, download=True)
        except Exception as e:  # no internet, bad archive, ...
            raise DataError(f"{hint} (download failed: {type(e).__name__}: {e})") from None
    return folder


def load_cifar10(root, download=True):
    folder = ensure_cifar10(root, download)
    try:
        train = [_read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
        test_images, test_labels = _read_cifar_batch(folder / "test_batch")
    except (OSError, pickle.UnpicklingError, KeyError, ValueError) as e:
        raise DataError(f"data.root: cannot read CIFAR-10 batches in {folder}: {e}") from None
    return Dataset("cifar10", torch.from_numpy(np.concatenate([t[0] for t in train])),
                   np.concatenate([t[1] for t in train]), torch.from_numpy(test_images), test_labels,
                   CIFAR10_MEAN, CIFAR10_STD)


# ------------------------------------------------------------------------ Fashion-MNIST

FASHION_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte")
FASHION_INSTALL = "`apt-get install dataset-fashion-mnist` puts Fashion-MNIST in /usr/share/datasets/fashion-mnist"


def _idx_file(root, stem):
    """An idx file as Debian ships it (`stem.gz`, gzip.open) or decompressed (`stem`, open)."""
    for path, opener in ((root / f"{stem}.gz", gzip.open), (root / stem, open)):
        if path.exists():
            return path, opener
    raise DataError(f"data.root: Fashion-MNIST file {stem}(.gz) not found in {root}; {FASHION_INSTALL}")


def _read_idx(root, stem):
    path, opener = _idx_file(root, stem)
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def ensure_fashion_mnist(root):
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data.root: {root} does not exist; {FASHION_INSTALL}")
    for stem in FASHION_STEMS:
        _idx_file(root, stem)
    return root


def load_fashion_mnist(root):
    root = ensure_fashion_mnist(root)
    images = {s: _read_idx(root, f"{s}-images-idx3-ubyte") for s in ("train", "t10k")}
    labels = {s: _read_idx(root, f"{s}-labels-idx1-ubyte") for s in ("train", "t10k")}
    # 1 channel: the models get a 1-channel stem
    return Dataset("fashion_mnist", torch.from_numpy(images["train"].copy()).unsqueeze(1),
                   labels["train"].astype(np.int64), torch.from_numpy(images["t10k"].copy()).unsqueeze(1),
                   labels["t10k"].astype(np.int64), FASHION_MEAN, FASHION_STD)


# ---------------------------------------------------------------------------- synthetic

def make_synthetic(n_train=1024, n_test=512, image_size=32, num_classes=10, seed=1234):
    """Deterministic CIFAR-shaped data: each class is a smooth random colour pattern,
    each image that pattern, randomly shifted, plus pixel noise. Learnable in a few
    epochs by a small ResNet, and independent of the run's seed."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, 3, 4, 4, generator=g)
    prototypes = torch.nn.functional.interpolate(coarse, size=image_size, mode="bilinear")

    def draw(n):
        labels = torch.arange(n) % num_classes
        labels = labels[torch.randperm(n, generator=g)]
        # each image: its class pattern, circularly shifted by up to 3 pixels, plus noise
        shift = torch.randint(-3, 4, (n, 2), generator=g)
        ar = torch.arange(image_size)
        rows = (ar[None, :] - shift[:, :1]) % image_size
        cols = (ar[None, :] - shift[:, 1:]) % image_size
        images = prototypes[labels[:, None, None, None], torch.arange(3)[None, :, None, None],
                            rows[:, None, :, None], cols[:, None, None, :]]
        images = images + 0.15 * torch.randn(images.shape, generator=g)
        return (images.clamp(0, 1) * 255).round().to(torch.uint8), labels.numpy().astype(np.int64)

    train_images, train_labels = draw(n_train)
    test_images, test_labels = draw(n_test)
    return Dataset("synthetic", train_images, train_labels, test_images, test_labels,
                   (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), num_classes)


def _root(cfg):
    return os.path.expanduser(str(cfg.root))


# name -> (check the data is there (downloading CIFAR-10 if allowed), load it); cfg: `data` node
DATASETS = {
    "cifar10": (lambda cfg: ensure_cifar10(_root(cfg), cfg.download),
                lambda cfg: load_cifar10(_root(cfg), cfg.download)),
    "fashion_mnist": (lambda cfg: ensure_fashion_mnist(_root(cfg)),
                      lambda cfg: load_fashion_mnist(_root(cfg))),
    "synthetic": (lambda cfg: None,
                  lambda cfg: make_synthetic(cfg.n_train, cfg.n_test, cfg.image_size)),
}


def ensure_available(cfg):
    """Check the data of a `data` config node before a job starts, so a missing dataset
    stops the command before any job folder exists."""
    DATASETS[cfg.name][0](cfg)


def load_dataset(cfg):
    return DATASETS[cfg.name][1](cfg)


# -------------------------------------------------------------------------- augmentation

def augment_epoch(images, generator, pad=4):
    """One epoch of the notebooks' training augmentation, for all images at once.

    Returns (order, augmented): a random permutation of the dataset and the images in
    that order, each randomly cropped from its zero-padded copy and flipped with p=0.5.
    All randomness comes from `generator`, which lives on the images' device."""
    n, c, h, w = images.shape
    dev = images.device
    order = torch.randperm(n, generator=generator, device=dev)
    top = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev)
    left = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev)
    flip = torch.rand(n, generator=generator, device=dev) < 0.5
    # Crop and flip as one gather from the padded images: row r of the output reads
    # padded row top + r; column q reads left + q, or left + w - 1 - q when flipped.
    ar_h, ar_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
    rows = top[:, None] + ar_h - pad                                   # (n, h), unpadded coords
    cols = left[:, None] + torch.where(flip[:, None], w - 1 - ar_w, ar_w) - pad
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    src = images[order[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                 rows.clamp(0, h - 1)[:, None, :, None], cols.clamp(0, w - 1)[:, None, None, :]]
    return order, src * inside[:, None].to(src.dtype)


class Normalize(torch.nn.Module):
    """uint8 (B, C, H, W) -> float, as ToTensor() + Normalize(mean, std). The first layer
    of every network here, so the data stays uint8 until it reaches the model."""

    def __init__(self, mean, std, channels_last=False):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.channels_last = channels_last

    def forward(self, images_u8):
        x = (images_u8.float() / 255 - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x
