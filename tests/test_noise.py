import numpy as np
import pytest

from dgl.noise import CIFAR10_ASYMMETRIC, make_noisy_labels


def notebook_inject_label_noise(labels, noise_rate, seed):
    """The notebooks' routine, restated with the global legacy NumPy generator."""
    np.random.seed(seed)
    labels = np.array(labels)
    n_noisy = int(noise_rate * len(labels))
    noisy_idx = np.random.choice(len(labels), n_noisy, replace=False)
    noisy = labels.copy()
    for idx in noisy_idx:
        noisy[idx] = np.random.choice([c for c in range(10) if c != labels[idx]])
    return noisy


@pytest.fixture(scope="module")
def labels():
    return np.random.RandomState(123).randint(0, 10, size=5000)


@pytest.mark.parametrize("rate,seed", [(0.4, 0), (0.8, 0), (0.4, 7), (0.8, 9), (0.2, 3), (0.0, 1)])
def test_symmetric_matches_notebook(labels, rate, seed):
    ours = make_noisy_labels("symmetric", labels, rate, seed)
    np.testing.assert_array_equal(ours, notebook_inject_label_noise(labels, rate, seed))
    flipped = ours != labels
    assert flipped.sum() == int(rate * len(labels))  # exact count, never the true class


def test_symmetric_differs_across_seeds(labels):
    a = make_noisy_labels("symmetric", labels, 0.4, 0)
    b = make_noisy_labels("symmetric", labels, 0.4, 1)
    assert (a != b).any()


def test_asymmetric_flips_per_class(labels):
    noisy = make_noisy_labels("asymmetric", labels, 0.4, 0)
    for c in range(10):
        members = labels == c
        changed = noisy[members] != c
        if c in CIFAR10_ASYMMETRIC:
            assert changed.sum() == int(0.4 * members.sum())
            assert (noisy[members][changed] == CIFAR10_ASYMMETRIC[c]).all()
        else:
            assert not changed.any()


def test_none_is_identity(labels):
    np.testing.assert_array_equal(make_noisy_labels("none", labels, 0.0, 0), labels)
