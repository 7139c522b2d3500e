"""The project's trainer against a plain restatement of the notebooks' training loop."""

import copy

import numpy as np
import pytest
import torch
from torch.nn.utils import parameters_to_vector

from dgl.data import augment_epoch
from dgl.noise import make_noisy_labels
from dgl.trainer import Trainer
from tests.helpers import make_cfg
from benchmarks.notebook_loop import notebook_loop


@pytest.mark.parametrize("model_name,width", [("resnet18", 0.125), ("tv_resnet18", 1.0)])
def test_trainer_matches_notebook_loop(tmp_path, model_name, width):
    # 5 steps an epoch (3 for the full-width torchvision model), the last one partial
    n_train, batch, epochs, K, lam = (150 if model_name == "resnet18" else 70), 32, 2, 3, 0.45
    cfg = make_cfg(["data=synthetic", f"data.n_train={n_train}", "data.n_test=50", f"model={model_name}",
                    f"model.width={width}", f"train.batch_size={batch}", f"train.epochs={epochs}",
                    f"train.value_every={K}", f"lam={lam}", "train.device=cpu", "train.precision=fp32",
                    "seed=3", "train.progress=false"])
    if model_name == "tv_resnet18":  # a full-width model: keep it short
        cfg.data.image_size = 16
    trainer = Trainer(cfg, tmp_path)
    reference = copy.deepcopy(trainer.model)
    initial = parameters_to_vector(reference.parameters()).detach().clone()

    # The same batches the trainer will draw: its data generator, seeded with the seed.
    ds = trainer.dataset
    noisy = torch.from_numpy(make_noisy_labels("symmetric", ds.train_labels, cfg.noise.rate, cfg.seed))
    clean = torch.from_numpy(ds.train_labels)
    mean = torch.tensor(ds.mean).view(1, -1, 1, 1)
    std = torch.tensor(ds.std).view(1, -1, 1, 1)
    rng = torch.Generator().manual_seed(cfg.seed)
    epochs_of_batches = []
    for _ in range(epochs):
        order, images = augment_epoch(ds.train_images, rng)
        x = (images.float() / 255 - mean) / std
        epochs_of_batches.append([(x[i:i + batch], noisy[order][i:i + batch], clean[order][i:i + batch])
                                  for i in range(0, n_train, batch)])

    result = trainer.fit()
    assert result["status"] == "completed"
    notebook_loop(reference, epochs_of_batches, lam, K, cfg.lr, milestones=[1, 1])

    ours, theirs = trainer.model.state_dict(), reference.state_dict()
    for name in theirs:
        a, b = ours[name].double(), theirs[name].double()
        rel = (a - b).norm() / max(b.norm(), 1e-12)
        assert rel < 1e-5, f"{name}: relative difference {rel:.2e}"
    # and training did move the weights: the comparison is not between two untouched models
    moved = (parameters_to_vector(trainer.model.parameters()) - initial).norm() / initial.norm()
    assert moved > 1e-3


def test_same_seed_same_initial_weights_as_notebook_order():
    """The notebooks seed torch, draw the noise with NumPy, then build the model."""
    from dgl.models import ResNet18

    cfg = make_cfg(["data=synthetic", "data.n_train=100", "data.n_test=20", "model.width=0.125",
                    "train.device=cpu", "seed=5"])
    trainer = Trainer(cfg, "/tmp")
    torch.manual_seed(5)
    np.random.seed(5)
    expected = ResNet18(0.125)
    for (name, a), b in zip(trainer.model.state_dict().items(), expected.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("epochs,expected", [(1, [1, 1]), (2, [1, 1]), (4, [2, 3]), (100, [50, 75])])
def test_lr_milestones_are_the_notebooks_and_never_epoch_zero(tmp_path, epochs, expected):
    """MultiStepLR at 50% and 75% of the epochs (50 and 75 of 100); a short run must not
    start with its learning rate already divided (a milestone at epoch 0)."""
    cfg = make_cfg(["data=synthetic", "data.n_train=64", "data.n_test=16", "model.width=0.125",
                    "train.device=cpu", f"train.epochs={epochs}"])
    trainer = Trainer(cfg, tmp_path)
    assert sorted(trainer.scheduler.milestones.elements()) == expected
    assert trainer.optimizer.param_groups[0]["lr"] == cfg.lr
