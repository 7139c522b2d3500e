import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dgl.data import DataError, augment_epoch, load_cifar10, load_fashion_mnist

FASHION = Path("/usr/share/datasets/fashion-mnist")


def write_tiny_cifar(root, n_per_batch=20, seed=0):
    """A CIFAR-10 folder in the real on-disk format: pickled dicts with b'data' (N x 3072
    uint8, CHW order) and b'labels'."""
    rng = np.random.RandomState(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.randint(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = rng.randint(0, 10, size=n_per_batch).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, f)
        batches[name] = (data, labels)
    return batches


def test_tiny_cifar_folder_loads_through_the_real_loader(tmp_path):
    batches = write_tiny_cifar(tmp_path)
    ds = load_cifar10(tmp_path, download=False)
    assert ds.train_images.shape == (100, 3, 32, 32) and ds.train_images.dtype == torch.uint8
    assert ds.test_images.shape == (20, 3, 32, 32)
    data, labels = batches["data_batch_2"]
    np.testing.assert_array_equal(ds.train_images[20:40].numpy(), data.reshape(20, 3, 32, 32))
    np.testing.assert_array_equal(ds.train_labels[20:40], labels)
    np.testing.assert_array_equal(ds.test_labels, batches["test_batch"][1])


def test_cifar_absent_says_where_to_put_the_archive(tmp_path):
    with pytest.raises(DataError, match=r"data.root: CIFAR-10 not found .*cifar-10-python.tar.gz"):
        load_cifar10(tmp_path / "nowhere", download=False)


def test_cifar_absent_and_offline_fails_fast_with_the_same_hint(tmp_path):
    start = time.time()
    with pytest.raises(DataError, match=r"cifar-10-python.tar.gz.*download failed"):
        load_cifar10(tmp_path, download=True)  # no internet on CI: the download fails
    assert time.time() - start < 60


@pytest.mark.skipif(not FASHION.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_from_debian_package():
    ds = load_fashion_mnist(FASHION)
    assert ds.train_images.shape == (60000, 1, 28, 28) and ds.test_images.shape == (10000, 1, 28, 28)
    assert sorted(np.unique(ds.train_labels)) == list(range(10))
    assert np.bincount(ds.train_labels).tolist() == [6000] * 10


def test_fashion_mnist_missing_root_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="data.root: .* does not exist; `apt-get install dataset-fashion-mnist`"):
        load_fashion_mnist(tmp_path / "absent")


def test_augmentation_is_the_notebooks_crop_and_flip():
    """Replay the generator to recover each image's crop and flip, and compare the result
    with pad-4-zeros + crop + flip done the plain way."""
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    order, out = augment_epoch(images, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    order2 = torch.randperm(64, generator=g)
    top = torch.randint(0, 9, (64,), generator=g)
    left = torch.randint(0, 9, (64,), generator=g)
    flip = torch.rand(64, generator=g) < 0.5
    assert torch.equal(order, order2)
    padded = F.pad(images, (4, 4, 4, 4))
    for k in range(64):
        crop = padded[order[k], :, top[k]:top[k] + 32, left[k]:left[k] + 32]
        if flip[k]:
            crop = crop.flip(-1)
        assert torch.equal(out[k], crop), k
    assert 10 < flip.sum() < 54 and len(set(top.tolist())) > 4  # really random
