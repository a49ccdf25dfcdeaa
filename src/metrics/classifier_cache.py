"""The reference classifier on disk: trained once per (data, settings), checked before it is trusted.

The cache file name carries a hash of the training settings and of the training images, so changing
either (a fixed recipe, a re-exported data set) trains a new classifier instead of loading a stale one.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import torch
from torch import Tensor

from src.metrics.classifier import ClassifierSettings, RefClassifier, accuracy, train_classifier
from src.utils.config import ConfigError
from src.utils.progress import note
from src.utils.torch_files import atomic_torch_save, build_lock

# Bump when RefClassifier or its training changes in a way the settings do not capture.
CACHE_VERSION = 2


class WeakClassifier(ConfigError):
    """The reference classifier scores too low on real test images to judge generated ones."""


def data_hash(images: Tensor, labels: Tensor) -> str:
    """sha256 of uint8 images (N, C, S, S) and labels (N,): identifies a training split."""
    h = hashlib.sha256()
    h.update(str(tuple(images.shape)).encode())
    h.update(images.contiguous().numpy().tobytes())
    h.update(labels.to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_path(
    cache_dir: str | Path, name: str, images: Tensor, labels: Tensor, settings: ClassifierSettings
) -> Path:
    """`<cache_dir>/classifier_<name>_<size>px_<hash of version, settings and data>.pt`."""
    key = json.dumps(
        {"version": CACHE_VERSION, "settings": settings.training_key(), "data": data_hash(images, labels)},
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(cache_dir) / f"classifier_{name}_{images.shape[-1]}px_{digest}.pt"


def check_accuracy(name: str, meta: dict, settings: ClassifierSettings, path: Path) -> None:
    """Refuse (WeakClassifier) or warn when the test accuracy in `meta` is below settings.min_accuracy."""
    acc = meta.get("test_accuracy")
    if acc is None or acc >= settings.min_accuracy:
        return
    message = (
        f"the reference classifier for {name} scores {acc:.3f} on real test images "
        f"(< {settings.min_accuracy}), so cond_acc/cfid would mislead; train it longer "
        f"(classifier_steps, now {settings.steps}) or accept it with classifier_on_low_accuracy=warn "
        f"(cached at {path})"
    )
    refuse_or_warn(message, settings.on_low_accuracy, WeakClassifier)


def refuse_or_warn(message: str, on_low_accuracy: str, error: type[Exception]) -> None:
    """A yardstick below its accuracy floor: raise `error(message)`, or with `warn` say it loudly."""
    if on_low_accuracy == "error":
        raise error(message)
    note(f"WARNING: {message}")
    warnings.warn(message, stacklevel=3)


def _split_off_test(images: Tensor, labels: Tensor) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Every 10th image becomes the test split, for data sets that ship without one."""
    keep = torch.arange(len(images)) % 10 != 0
    return (images[keep], labels[keep]), (images[~keep], labels[~keep])


def cached_classifier(
    cache_dir: str | Path,
    name: str,
    train_split: tuple[Tensor, Tensor],
    test_split: tuple[Tensor, Tensor] | None,
    num_classes: int,
    settings: ClassifierSettings | None = None,
) -> RefClassifier:
    """Load the classifier for this data and settings from the cache, or train, test and cache it."""
    settings = settings or ClassifierSettings()
    images, labels = train_split
    path = cache_path(cache_dir, name, images, labels, settings)
    if path.is_file():
        return _load(path, name, settings)
    with build_lock(path, note):
        if path.is_file():  # built by the process that held the lock
            return _load(path, name, settings)
        return _train_and_cache(path, name, images, labels, test_split, num_classes, settings)


def _load(path: Path, name: str, settings: ClassifierSettings) -> RefClassifier:
    """The cached classifier, checked against the accuracy floor."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    check_accuracy(name, blob["meta"], settings, path)
    model = RefClassifier(**blob["config"])
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def _train_and_cache(
    path: Path,
    name: str,
    images: Tensor,
    labels: Tensor,
    test_split: tuple[Tensor, Tensor] | None,
    num_classes: int,
    settings: ClassifierSettings,
) -> RefClassifier:
    """Train, test and cache the classifier at `path`."""
    if test_split is None:
        (images, labels), test_split = _split_off_test(images, labels)
    model = train_classifier(images, labels, num_classes, settings)
    meta = {
        "train_accuracy": accuracy(model, images[:5000], labels[:5000]),
        "test_accuracy": accuracy(model, *test_split),
        "settings": settings.training_key(),
    }
    atomic_torch_save({"config": model.config, "state_dict": model.state_dict(), "meta": meta}, path)
    note(
        f"reference classifier for {name}: test accuracy {meta['test_accuracy']:.4f} after "
        f"{settings.steps} steps; cached at {path} (later runs load it)"
    )
    check_accuracy(name, meta, settings, path)
    return model
