"""Reference classifier for text faithfulness: trained once per data set on its real training split.

It answers "does the image show the class the prompt named?" (conditional accuracy), and its
penultimate features give a classifier-feature FID that runs in seconds on a CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.utils.checkpoint_io import atomic_torch_save

log = logging.getLogger(__name__)

CACHE_VERSION = 1


class RefClassifier(nn.Module):
    """Small CNN: two conv blocks -> 128-d features -> class logits. Input (N, C, S, S) in [-1, 1]."""

    def __init__(self, *, channels: int, image_size: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.config = {
            "channels": channels,
            "image_size": image_size,
            "num_classes": num_classes,
            "width": width,
        }
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(3),
            nn.Flatten(),
        )
        self.features_head = nn.Sequential(nn.Linear(2 * width * 9, 128), nn.ReLU())
        self.logits_head = nn.Linear(128, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """(N, C, S, S) -> (N, 128) penultimate features."""
        return self.features_head(self.body(x))

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, S, S) -> (N, num_classes) logits."""
        return self.logits_head(self.features(x))


def _to_unit(images: Tensor) -> Tensor:
    return images.float().div(127.5).sub(1.0)


def _shift(x: Tensor, g: torch.Generator, pixels: int = 2) -> Tensor:
    """Random translation by up to `pixels` (pad + crop), one offset per batch: cheap augmentation."""
    s = x.shape[-1]
    dx, dy = torch.randint(0, 2 * pixels + 1, (2,), generator=g).tolist()
    return F.pad(x, (pixels,) * 4, value=-1.0)[..., dy : dy + s, dx : dx + s]


@torch.no_grad()
def accuracy(model: RefClassifier, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy on uint8 images (N, C, S, S) and labels (N,)."""
    model.eval()
    correct = sum(
        int((model(_to_unit(x)).argmax(1) == y).sum())
        for x, y in zip(images.split(batch_size), labels.split(batch_size))
    )
    return correct / len(labels)


def train_classifier(
    images: Tensor,
    labels: Tensor,
    num_classes: int,
    *,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
) -> RefClassifier:
    """Fit a RefClassifier on uint8 images (N, C, S, S) with int labels (N,)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = RefClassifier(channels=images.shape[1], image_size=images.shape[-1], num_classes=num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * (len(images) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1))
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(images), generator=g)
        for i in range(len(images) // batch_size):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            loss = F.cross_entropy(model(_shift(_to_unit(images[idx]), g)), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def cached_classifier(
    cache_dir: str | Path,
    name: str,
    train_split: tuple[Tensor, Tensor],
    test_split: tuple[Tensor, Tensor] | None,
    num_classes: int,
    epochs: int = 3,
) -> RefClassifier:
    """Load `<cache_dir>/classifier_<name>_<size>px_v*.pt`, or train it on the real training split."""
    images, labels = train_split
    path = Path(cache_dir) / f"classifier_{name}_{images.shape[-1]}px_v{CACHE_VERSION}.pt"
    if path.is_file():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model = RefClassifier(**blob["config"])
        model.load_state_dict(blob["state_dict"])
        return model.eval()
    log.info("training the reference classifier for %s (cached at %s)", name, path)
    model = train_classifier(images, labels, num_classes, epochs=epochs)
    meta = {"train_accuracy": accuracy(model, images[:5000], labels[:5000])}
    if test_split is not None:
        meta["test_accuracy"] = accuracy(model, *test_split)
    log.info("reference classifier for %s: %s", name, meta)
    atomic_torch_save({"config": model.config, "state_dict": model.state_dict(), "meta": meta}, path)
    return model
