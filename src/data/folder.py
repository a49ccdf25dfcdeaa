"""Captioned image folders (the layout CUB-200 / Oxford-102 caption sets are usually converted to).

Captions come from, in order of preference: `captions.jsonl` (`{"file": ..., "caption": ...}` per line,
or `"captions": [...]`), `captions.csv` (header `file,caption`), or a `<image stem>.txt` beside each
image with one caption per line. Several captions per image are allowed; images are resized (shorter
side) and centre-cropped to the configured size once, at load time.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from src.data.captions import CaptionTable
from src.data.datamodule import TableDataModule
from src.data.sources import DataFilesMissing

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


class FolderDataError(ValueError):
    """A captioned folder is empty, or has unreadable images or images without captions."""


def _listing(names: list[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def read_captions(root: Path, files: list[Path]) -> dict[str, list[str]]:
    """Map image path (relative to root, posix) -> its captions, from whichever caption layout exists."""
    out: dict[str, list[str]] = {}
    if (root / "captions.jsonl").is_file():
        for n, line in enumerate((root / "captions.jsonl").read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                caps = rec["captions"] if "captions" in rec else [rec["caption"]]
                out.setdefault(str(rec["file"]), []).extend(str(c) for c in caps)
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise FolderDataError(
                    f"{root / 'captions.jsonl'} line {n}: need file and caption(s) ({err})"
                ) from err
    elif (root / "captions.csv").is_file():
        with open(root / "captions.csv", newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"file", "caption"} <= set(reader.fieldnames):
                raise FolderDataError(f"{root / 'captions.csv'} needs a header with columns file,caption")
            for row in reader:
                out.setdefault(row["file"], []).append(row["caption"])
    else:
        for path in files:
            txt = path.with_suffix(".txt")
            if txt.is_file():
                out[path.relative_to(root).as_posix()] = txt.read_text(encoding="utf-8").splitlines()
    return {k: [c.strip() for c in v if c.strip()] for k, v in out.items()}


def load_image(path: Path, size: int, channels: int) -> np.ndarray:
    """One image file -> uint8 (C, size, size): shorter side resized to size, centre-cropped."""
    with Image.open(path) as img:
        img = img.convert("L" if channels == 1 else "RGB")
        w, h = img.size
        scale = size / min(w, h)
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
        w, h = img.size
        left, top = (w - size) // 2, (h - size) // 2
        arr = np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def load_captioned_folder(root: str | Path, image_size: int, channels: int) -> tuple[Tensor, list[list[str]]]:
    """All images as uint8 (N, C, S, S) with their captions; bad items are named in one error."""
    root = Path(root)
    if not root.is_dir():
        raise DataFilesMissing(f"image folder {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FolderDataError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    captions = read_captions(root, files)
    rel = [p.relative_to(root).as_posix() for p in files]
    missing = [r for r in rel if not captions.get(r)]
    if missing:
        raise FolderDataError(f"{len(missing)} image(s) in {root} have no caption: {_listing(missing)}")
    images, bad = [], []
    for path, name in zip(files, rel):
        try:
            images.append(load_image(path, image_size, channels))
        except (UnidentifiedImageError, OSError, ValueError):
            bad.append(name)
    if bad:
        raise FolderDataError(f"{len(bad)} unreadable image(s) in {root}: {_listing(bad)}")
    return torch.from_numpy(np.stack(images)), [captions[r] for r in rel]


class FolderDataModule(TableDataModule):
    """GANDataModule over a captioned folder: free-form captions, no class labels (label = -1)."""

    def __init__(
        self,
        *,
        name: str = "folder",
        data_dir: str,
        image_size: int,
        channels: int,
        batch_size: int = 64,
        critic_batches: int = 1,
        hflip: bool = False,
        seed: int = 0,
        sample_prompts: list[str] | None = None,
        evaluator_target: str | None = None,
        **_: Any,
    ) -> None:
        super().__init__(
            name=name,
            source=None,
            data_dir=data_dir,
            image_size=image_size,
            channels=channels,
            captions=None,
            batch_size=batch_size,
            critic_batches=critic_batches,
            hflip=hflip,
            download=False,
            seed=seed,
            sample_prompts=sample_prompts,
            evaluator_target=evaluator_target,
        )

    def build(self) -> tuple[Tensor, Tensor, CaptionTable]:
        images, caps = load_captioned_folder(self.data_dir, self.image_size, self.channels)
        return images, torch.full((len(images),), -1, dtype=torch.long), CaptionTable(caps)

    def prepare_data(self) -> None:
        self._load()

    def load_split(self, train: bool = True, download: bool = False) -> tuple[Tensor, Tensor]:
        if not train:
            raise FileNotFoundError("captioned folders have a single split")
        self._load()
        return self.train_images, self.train_labels
