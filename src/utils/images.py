"""Image helpers: tensors in [-1, 1] <-> uint8, PNG grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid


def to_uint8(images: Tensor) -> Tensor:
    """(N, C, H, W) float in [-1, 1] -> (N, C, H, W) uint8."""
    return ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)


def grid_image(images: Tensor, nrow: int) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> one uint8 grid (H', W', 3), `nrow` images per row."""
    grid = make_grid(to_uint8(images).cpu(), nrow=nrow, padding=2, pad_value=255)
    if grid.shape[0] == 1:
        grid = grid.expand(3, -1, -1)
    return grid.permute(1, 2, 0).numpy()


def save_grid(images: Tensor, path: str | Path, nrow: int) -> np.ndarray:
    """Write a PNG grid (rows = prompts when images are prompt-major) and return its pixels."""
    arr = grid_image(images, nrow)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return arr
