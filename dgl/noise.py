"""Label noise. The test set is never corrupted; only training labels pass through here."""

import numpy as np

# The usual CIFAR-10 asymmetric map (Patrini et al. 2017): source class -> target class.
# truck->automobile, bird->airplane, deer->horse, cat->dog, dog->cat.
CIFAR10_ASYMMETRIC = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}


def symmetric_noise(labels, rate, seed, num_classes=10):
    """The notebooks' routine, draw for draw: with the legacy NumPy generator seeded
    with `seed`, choose exactly int(rate * N) indices without replacement, then for
    each in that order draw a new label uniformly among the other classes."""
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.RandomState(seed)  # same stream as np.random.seed(seed) + np.random.*
    noisy = labels.copy()
    flipped = rng.choice(len(labels), int(rate * len(labels)), replace=False)
    for i in flipped:
        others = [c for c in range(num_classes) if c != labels[i]]
        noisy[i] = rng.choice(others)
    return noisy


def asymmetric_noise(labels, rate, seed, class_map=CIFAR10_ASYMMETRIC):
    """Flip int(rate * n_c) samples of each source class c to class_map[c]."""
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.RandomState(seed)
    noisy = labels.copy()
    for source in sorted(class_map):
        members = np.flatnonzero(labels == source)
        flipped = rng.choice(members, int(rate * len(members)), replace=False)
        noisy[flipped] = class_map[source]
    return noisy


NOISES = {  # name -> draw(labels, rate, seed, num_classes)
    "symmetric": symmetric_noise,
    "asymmetric": lambda labels, rate, seed, num_classes: asymmetric_noise(labels, rate, seed),
    "none": lambda labels, rate, seed, num_classes: np.asarray(labels, dtype=np.int64).copy(),
}


def make_noisy_labels(kind, labels, rate, seed, num_classes=10):
    return NOISES[kind](labels, rate, seed, num_classes)
