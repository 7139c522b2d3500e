"""The study's experiment files run on CIFAR-10 at the notebooks' length with two overrides."""

import pytest

from tests.helpers import make_cfg


@pytest.mark.parametrize("experiment", ["q1_locate", "q3_locate", "q1_adaptive", "q3_adaptive",
                                        "q1_transition", "q3_transition"])
def test_a_study_moves_to_cifar10_with_data_and_epochs_alone(experiment):
    sweeper = ["hydra/sweeper=adaptive"] if experiment.endswith("adaptive") else []
    fmnist = make_cfg([f"experiment={experiment}", *sweeper])
    cifar = make_cfg([f"experiment={experiment}", *sweeper, "data=cifar10", "train.epochs=100"])
    assert (fmnist.data.name, fmnist.train.epochs, fmnist.train.eval_every) == ("fashion_mnist", 30, 3)
    assert (cifar.data.name, cifar.train.epochs, cifar.train.eval_every) == ("cifar10", 100, 10)
    assert cifar.name != fmnist.name  # each study in its own sweep folder
    assert (cifar.noise.rate, cifar.model.name) == (fmnist.noise.rate, fmnist.model.name)
