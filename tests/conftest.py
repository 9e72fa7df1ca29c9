"""Fixtures shared by the test modules (helpers without fixtures live in tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import IMAGE_SIDE, SHARED_SUBSET, learnable_images, write_dataset

MNIST_SUBSET_NEEDS = (
    "a torchvision MNIST root: MNIST/raw/ holding the official IDX files cut to the first 15,604 "
    "training images (and their labels) and all 10,000 test images, .gz or not"
)
"""What the tests on real digits need at :data:`tests.helpers.SHARED_SUBSET`."""


def require_mnist(root: Path) -> Path:
    """``root`` when it holds a dataset root; skip the test otherwise, saying what it needs."""
    if not (root / "MNIST" / "raw").is_dir():
        pytest.skip(f"needs real MNIST digits at {root}: {MNIST_SUBSET_NEEDS} (README, "
                    "'Tests': how to make them from the full MNIST)")
    return root


@pytest.fixture
def mnist_subset() -> Path:
    """The real MNIST digits beside the project (:data:`tests.helpers.SHARED_SUBSET`); the test
    skips, saying what it needs, where there are none."""
    return require_mnist(SHARED_SUBSET)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset root of learnable 8x8 images: each class a fixed random pattern plus noise
    (300 train, 100 test), gzipped IDX files in the torchvision layout."""
    rng = np.random.default_rng(0)
    templates = rng.integers(0, 256, (10, IMAGE_SIDE, IMAGE_SIDE))
    (train_x, train_y), (test_x, test_y) = (learnable_images(n, rng, templates) for n in (300, 100))
    root = tmp_path_factory.mktemp("data")
    write_dataset(root / "MNIST" / "raw", {"train_images": train_x, "train_labels": train_y,
                                           "test_images": test_x, "test_labels": test_y}, gz=True)
    return root
