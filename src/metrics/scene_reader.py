"""Reference reader for digit scenes: reads an image into a layout (per cell: digit or empty, colour).

Each of the 4 cells is cut out and read by one small CNN with two heads (11-way digit-or-empty, 7-way
colour). It is trained on real rendered scenes in which every (digit, colour) pair occurs, so held-out
pairs are read as well as seen ones, and it is refused when its cell accuracy on real test scenes is too
low: a reader error counts against every model it judges.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.data.scenes import CELLS, COLOURS, EMPTY, NUM_DIGITS, DigitPool, make_scenes
from src.metrics.classifier import ClassifierSettings, _to_unit, augment, fit_by_steps
from src.metrics.classifier_cache import WeakClassifier, data_hash, refuse_or_warn
from src.utils.config import ConfigError
from src.utils.progress import note
from src.utils.torch_files import atomic_torch_save, build_lock

# Bump when SceneReader or its training changes in a way the settings do not capture.
CACHE_VERSION = 2
BLANK = NUM_DIGITS  # the digit head's class for an empty cell


@dataclass(frozen=True)
class ReaderSettings(ClassifierSettings):
    """How the scene reader is trained, on what, and how accurate it must be to be trusted (the
    classifier's settings, with the reader's defaults, plus its scenes and its harder jitter)."""

    # Cell crops per optimizer step.
    batch_size: int = 128
    shift: float = 1.0
    # Real scenes (every pair allowed) it is trained on (training digits) and tested on (test digits).
    train_scenes: int = 20000
    test_scenes: int = 2000
    # Brightness factor down to 1 - dim, and Gaussian noise up to `noise` (in [-1, 1] units): generated
    # digits are less tidy than rendered ones, and a faint haze in an empty cell should still read as empty.
    dim: float = 0.4
    noise: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.train_scenes < 1 or self.test_scenes < 1:
            raise ConfigError(f"scene reader scene counts must be >= 1 (got {self})")

    @classmethod
    def from_classifier(cls, settings: ClassifierSettings | None) -> ReaderSettings:
        """The reader is the scenes' reference classifier: it takes that config's steps, seed and guard."""
        if settings is None:
            return cls()
        return cls(
            steps=settings.steps,
            seed=settings.seed,
            min_accuracy=settings.min_accuracy,
            on_low_accuracy=settings.on_low_accuracy,
        )


class WeakReader(WeakClassifier):
    """The scene reader reads too few cells of real test scenes correctly to judge generated ones."""


def cell_crops(images: Tensor) -> Tensor:
    """Cut each scene into its cells: (N, C, S, S) -> (N * 4, C, S/2, S/2), cells in CELLS order."""
    n, c, s, _ = images.shape
    h = s // 2
    # (N, C, row, h, col, h) -> (N, row, col, C, h, h): row-major cells, as CELLS are numbered.
    grid = images[..., : 2 * h, : 2 * h].reshape(n, c, 2, h, 2, h)
    return grid.permute(0, 2, 4, 1, 3, 5).reshape(-1, c, h, h)


class SceneReader(nn.Module):
    """Small CNN on one cell crop (K, 3, h, h) in [-1, 1]: 128-d features, digit-or-empty (11) and colour (7)
    logits. One conv layer fewer than RefClassifier: it reads 4 crops per image and is trained on whatever
    machine evaluates first (~3.9 M multiply-adds per 16 px crop at width 32, against 6.1 M)."""

    def __init__(self, *, channels: int = 3, image_size: int, width: int = 32) -> None:
        super().__init__()
        self.config = {"channels": channels, "image_size": image_size, "width": width}
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
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(2 * width * 16, 128),
            nn.ReLU(),
        )
        self.digit_head = nn.Linear(128, BLANK + 1)
        self.colour_head = nn.Linear(128, len(COLOURS))

    def features(self, x: Tensor) -> Tensor:
        """Crops (K, 3, h, h) in [-1, 1] -> (K, 128) penultimate features."""
        return self.body(x)

    def heads(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Crops (K, 3, h, h) in [-1, 1] -> digit-or-empty logits (K, 11), colour logits (K, 7)."""
        f = self.features(x)
        return self.digit_head(f), self.colour_head(f)

    @torch.no_grad()
    def read(self, images: Tensor, batch_size: int = 1024) -> Tensor:
        """Read uint8 scenes (N, 3, S, S) into layouts (N, 4, 2) int64, EMPTY where a cell reads empty."""
        self.eval()
        out = []
        for part in images.split(max(1, batch_size // len(CELLS))):
            digit, colour = self.heads(_to_unit(cell_crops(part)))
            d, c = digit.argmax(1), colour.argmax(1)
            cells = torch.stack([d, c], 1).masked_fill((d == BLANK)[:, None], EMPTY)
            out.append(cells.reshape(len(part), len(CELLS), 2))
        return torch.cat(out) if out else torch.empty(0, len(CELLS), 2, dtype=torch.long)

    @torch.no_grad()
    def crop_features(self, crops: Tensor, batch_size: int = 1024) -> Tensor:
        """Features of uint8 cell crops (K, 3, h, h): (K, 128), the space crop FID/precision/recall use."""
        self.eval()
        parts = [self.features(_to_unit(p)) for p in crops.split(batch_size)]
        return torch.cat(parts) if parts else torch.empty(0, 128)


def _targets(layouts: Tensor) -> tuple[Tensor, Tensor]:
    """Per-crop targets of layouts (N, 4, 2): digit-or-empty (N * 4,) in 0..10, colour (N * 4,) or EMPTY."""
    cells = layouts.reshape(-1, 2)
    return cells[:, 0].masked_fill(cells[:, 0] == EMPTY, BLANK), cells[:, 1]


def _jitter(x: Tensor, g: torch.Generator, s: ReaderSettings) -> Tensor:
    """Affine jitter, dimming and noise on crops (K, 3, h, h) in [-1, 1]."""
    x = augment(x, g, s.rotate, s.scale, s.shift)
    bright = 1 - s.dim * torch.rand(len(x), 1, 1, 1, generator=g)
    sigma = s.noise * torch.rand(len(x), 1, 1, 1, generator=g)
    return ((x + 1) * bright - 1 + sigma * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def train_reader(images: Tensor, layouts: Tensor, settings: ReaderSettings | None = None) -> SceneReader:
    """Fit a SceneReader on uint8 scenes (N, 3, S, S) and layouts (N, 4, 2) for `settings.steps` steps."""
    # Inside a training run the global RNG draws G's noise: a cold reader cache must not change the run.
    with torch.random.fork_rng(devices=[]):
        return _fit_reader(images, layouts, settings or ReaderSettings())


def _fit_reader(images: Tensor, layouts: Tensor, s: ReaderSettings) -> SceneReader:
    g = torch.Generator().manual_seed(s.seed)
    torch.manual_seed(s.seed)
    crops = cell_crops(images)
    digits, colours = _targets(layouts)
    model = SceneReader(channels=crops.shape[1], image_size=crops.shape[-1], width=s.width)

    def loss(idx: Tensor) -> Tensor:
        digit, colour = model.heads(_jitter(_to_unit(crops[idx]), g, s))
        inked = colours[idx] != EMPTY  # an empty cell has no colour to learn
        value = F.cross_entropy(digit, digits[idx])
        if inked.any():
            value = value + F.cross_entropy(colour[inked], colours[idx][inked])
        return value

    fit_by_steps(
        model, loss, len(crops), steps=s.steps, batch_size=s.batch_size, lr=s.lr, g=g, what="scene reader"
    )
    return model.eval()


def read_accuracy(reader: SceneReader, images: Tensor, layouts: Tensor) -> dict[str, float]:
    """Shares of cells (digit or empty, colour where inked) and of scenes (N, 3, S, S) read right."""
    right = (reader.read(images) == layouts).all(-1)  # an EMPTY cell is right only if read (EMPTY, EMPTY)
    inked = layouts[..., 0] != EMPTY
    return {
        "cell_accuracy": float(right.float().mean()),
        # Empty cells are nearly free; the guard reads the cells that hold a digit.
        "inked_cell_accuracy": float(right[inked].float().mean()),
        "scene_accuracy": float(right.all(1).float().mean()),
    }


def reader_path(cache_dir: str | Path, name: str, images: Tensor, layouts: Tensor, s: ReaderSettings) -> Path:
    """`<cache_dir>/scene_reader_<name>_<size>px_<hash of version, settings and training scenes>.pt`."""
    key = json.dumps(
        {"version": CACHE_VERSION, "settings": s.training_key(), "data": data_hash(images, layouts)},
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(cache_dir) / f"scene_reader_{name}_{images.shape[-1]}px_{digest}.pt"


def check_reader(meta: dict, s: ReaderSettings, path: Path) -> None:
    """Refuse (WeakReader) or warn when the accuracy on inked cells in `meta` is below `s.min_accuracy`."""
    acc = meta["inked_cell_accuracy"]
    if acc >= s.min_accuracy:
        return
    message = (
        f"the scene reader reads {acc:.3f} of real test digits (digit and colour) correctly "
        f"(< {s.min_accuracy}), so scene "
        f"scores would mislead; train it longer (classifier_steps, now {s.steps}) or accept it with "
        f"classifier_on_low_accuracy=warn (cached at {path})"
    )
    refuse_or_warn(message, s.on_low_accuracy, WeakReader)


def cached_reader(
    cache_dir: str | Path,
    name: str,
    pools: tuple[DigitPool, DigitPool],
    image_size: int,
    settings: ReaderSettings | None = None,
) -> tuple[SceneReader, dict[str, Any]]:
    """The reader for scenes of (training, test) digit pools at `image_size`: loaded, or trained, tested and
    cached; returns it and its meta (test cell and scene accuracy)."""
    s = settings or ReaderSettings()
    # Every pair is allowed: the reader must know the pairs a model never saw.
    images, layouts = make_scenes(s.train_scenes, pools[0], image_size, s.seed, heldout_pairs=False)
    path = reader_path(cache_dir, name, images, layouts, s)
    if path.is_file():
        return _load_reader(path, s)
    with build_lock(path, note):
        if path.is_file():  # built by the process that held the lock
            return _load_reader(path, s)
        return _train_and_cache(path, name, images, layouts, pools[1], image_size, s)


def _load_reader(path: Path, s: ReaderSettings) -> tuple[SceneReader, dict[str, Any]]:
    """The cached reader and its meta, checked against the accuracy floor."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    check_reader(blob["meta"], s, path)
    model = SceneReader(**blob["config"])
    model.load_state_dict(blob["state_dict"])
    return model.eval(), blob["meta"]


def _train_and_cache(
    path: Path,
    name: str,
    images: Tensor,
    layouts: Tensor,
    test_pool: DigitPool,
    image_size: int,
    s: ReaderSettings,
) -> tuple[SceneReader, dict[str, Any]]:
    """Train the reader on (images, layouts), test it on fresh scenes of `test_pool`, cache it at `path`."""
    model = train_reader(images, layouts, s)
    test = make_scenes(s.test_scenes, test_pool, image_size, s.seed + 1, heldout_pairs=False)
    meta = {**read_accuracy(model, *test), "steps": s.steps, "settings": s.training_key()}
    atomic_torch_save({"config": model.config, "state_dict": model.state_dict(), "meta": meta}, path)
    note(
        f"scene reader for {name}: {meta['cell_accuracy']:.4f} of real test cells read right "
        f"({meta['inked_cell_accuracy']:.4f} of digits, {meta['scene_accuracy']:.4f} of scenes) after "
        f"{s.steps} steps; cached at {path}"
    )
    check_reader(meta, s, path)
    return model, meta
