"""Raw image sources: each returns the whole split as uint8 (N, C, H, W) images and int64 (N,) labels.

CIFAR-10, SVHN and MNIST go through torchvision's own dataset classes so their on-disk formats are
parsed by the reference code; only the in-memory layout is PixelGAN's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

ImageSet = tuple[Tensor, Tensor]


class DataFilesMissing(RuntimeError):
    """A data set's files are absent and could not be downloaded."""


def _torchvision(
    make: Callable[[bool], object], name: str, where: Path, files: list[str], download: bool
) -> object:
    """Build a torchvision data set from disk, downloading only when allowed and needed."""
    try:
        return make(False)
    except RuntimeError as missing:
        if not download:
            raise DataFilesMissing(
                f"{name} files not found: put {', '.join(files)} in {where} (dataset.download=false)"
            ) from missing
    try:
        return make(True)
    except Exception as err:  # network errors come in many types (URLError, OSError, HTTPError...)
        raise DataFilesMissing(
            f"{name} files not found and download failed ({type(err).__name__}): "
            f"put {', '.join(files)} in {where}"
        ) from err


def load_digits(root: str | Path, train: bool = True, download: bool = False) -> ImageSet:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images); every 5th image is the test split."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    keep = (np.arange(len(bunch.target)) % 5 != 0) if train else (np.arange(len(bunch.target)) % 5 == 0)
    images = np.rint(bunch.images[keep] / 16.0 * 255.0).astype(np.uint8)[:, None]
    return torch.from_numpy(images), torch.from_numpy(bunch.target[keep].astype(np.int64))


def load_mnist(root: str | Path, train: bool = True, download: bool = True) -> ImageSet:
    """MNIST via torchvision (root/MNIST/raw/*-ubyte)."""
    from torchvision.datasets import MNIST

    files = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    ds = _torchvision(
        lambda d: MNIST(str(root), train=train, download=d),
        "MNIST",
        Path(root) / "MNIST" / "raw",
        files,
        download,
    )
    return ds.data.unsqueeze(1).contiguous(), ds.targets.long()


def load_cifar10(root: str | Path, train: bool = True, download: bool = True) -> ImageSet:
    """CIFAR-10 via torchvision (root/cifar-10-batches-py/, the python pickle batches)."""
    from torchvision.datasets import CIFAR10

    files = ["data_batch_1..5", "test_batch", "batches.meta"]
    ds = _torchvision(
        lambda d: CIFAR10(str(root), train=train, download=d),
        "CIFAR-10",
        Path(root) / "cifar-10-batches-py",
        files,
        download,
    )
    images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
    return images, torch.tensor(ds.targets, dtype=torch.long)


def load_svhn(root: str | Path, train: bool = True, download: bool = True) -> ImageSet:
    """SVHN cropped digits via torchvision (root/SVHN/{train,test}_32x32.mat); label 10 is digit 0."""
    from torchvision.datasets import SVHN

    split = "train" if train else "test"
    where = Path(root) / "SVHN"
    ds = _torchvision(
        lambda d: SVHN(str(where), split=split, download=d), "SVHN", where, [f"{split}_32x32.mat"], download
    )
    return torch.from_numpy(np.ascontiguousarray(ds.data)), torch.from_numpy(ds.labels.astype(np.int64))
