"""Writers of tiny CIFAR-10 / SVHN files in torchvision's real on-disk formats."""

import pickle

import numpy as np
import scipy.io


def write_cifar10(root, n_per_batch=20):
    """The real CIFAR-10 python layout: pickled dicts with uint8 rows of 3072 (R, G, B planes)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            "data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
            "labels": list(rng.integers(0, 10, n_per_batch)),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(
            {
                "label_names": [
                    "airplane",
                    "automobile",
                    "bird",
                    "cat",
                    "deer",
                    "dog",
                    "frog",
                    "horse",
                    "ship",
                    "truck",
                ]
            },
            f,
        )
    return folder


def write_svhn(root, n=30):
    """The real SVHN .mat layout: X (32, 32, 3, N) uint8, y (N, 1) with 10 meaning digit 0."""
    folder = root / "SVHN"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
    y[0, 0] = 10
    scipy.io.savemat(folder / "train_32x32.mat", {"X": X, "y": y})
    return X, y
