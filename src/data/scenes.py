"""Digit scenes: coloured handwritten digits in a 2x2 grid, a pure function of the seed.

A layout is an int64 tensor (N, 4, 2): for each cell (top left, top right, bottom left, bottom right) the
digit and the palette index of its colour, both EMPTY (-1) when the cell is empty. Rendering pastes a
real digit of that class, resized to 7/8 of the cell side and centred with a random offset of at most
1/16 of it, with pixel = intensity / 255 x colour.
"""

from __future__ import annotations

import torch
from torch import Tensor

from src.data.datamodule import batch_seed, resize_uint8

PALETTE: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (255, 0, 0)),
    ("green", (0, 255, 0)),
    ("blue", (0, 0, 255)),
    ("yellow", (255, 255, 0)),
    ("cyan", (0, 255, 255)),
    ("magenta", (255, 0, 255)),
    ("white", (255, 255, 255)),
)
COLOURS = tuple(name for name, _ in PALETTE)
CELLS = ("top left", "top right", "bottom left", "bottom right")
EMPTY = -1
NUM_DIGITS = 10


def heldout_colour(digit: int | Tensor) -> int | Tensor:
    """The palette index a digit never wears in training when pairs are held out: digit mod 6."""
    return digit % 6


def is_heldout_pair(digit: Tensor, colour: Tensor) -> Tensor:
    """True where (digit, colour) is a held-out pair; EMPTY cells are never held out. Any shape."""
    return (digit >= 0) & (colour == digit % 6)


def count_digits(layouts: Tensor) -> Tensor:
    """Digits per scene: (N, 4, 2) -> (N,) int64."""
    return (layouts[..., 0] >= 0).sum(1)


def sample_layouts(
    n: int, generator: torch.Generator, *, heldout_pairs: bool = True, max_digits: int = 4
) -> Tensor:
    """n random layouts (n, 4, 2): 1..max_digits digits in random cells, uniform digits and colours
    (never a held-out pair when `heldout_pairs`)."""
    if not 1 <= max_digits <= len(CELLS):
        raise ValueError(f"max_digits must be 1..{len(CELLS)}, got {max_digits}")
    counts = torch.randint(1, max_digits + 1, (n,), generator=generator)
    order = torch.rand(n, len(CELLS), generator=generator).argsort(1)
    occupied = torch.zeros(n, len(CELLS), dtype=torch.bool)
    occupied.scatter_(1, order, torch.arange(len(CELLS)).expand(n, -1) < counts[:, None])
    digits = torch.randint(NUM_DIGITS, (n, len(CELLS)), generator=generator)
    if heldout_pairs:
        # Uniform over the 6 colours left: draw among 6, then step over the held-out index.
        colours = torch.randint(len(COLOURS) - 1, (n, len(CELLS)), generator=generator)
        colours = colours + (colours >= heldout_colour(digits)).long()
    else:
        colours = torch.randint(len(COLOURS), (n, len(CELLS)), generator=generator)
    layouts = torch.stack([digits, colours], -1)
    return torch.where(occupied[..., None], layouts, torch.full_like(layouts, EMPTY))


def digit_side(size: int) -> int:
    """Side of a pasted digit on a size x size canvas: 7/8 of the cell side."""
    return round(size / 2 * 7 / 8)


class DigitPool:
    """Real digit images of each class, resized once to the pasted size: what scenes are drawn from."""

    def __init__(self, images: Tensor, labels: Tensor, size: int) -> None:
        if images.dim() != 4 or images.shape[1] != 1:
            raise ValueError(f"digit images must be (N, 1, H, W) grey uint8, got {tuple(images.shape)}")
        self.side = digit_side(size)
        self.images = resize_uint8(images, self.side)[:, 0]  # (M, side, side)
        self.by_class = [torch.nonzero(labels == d).flatten() for d in range(NUM_DIGITS)]
        missing = [d for d, idx in enumerate(self.by_class) if len(idx) == 0]
        if missing:
            raise ValueError(f"the digit source has no images of class(es) {missing}")

    def pick(self, digits: Tensor, generator: torch.Generator) -> Tensor:
        """A random image index of each digit's class: (K,) -> (K,) int64."""
        u = torch.rand(len(digits), generator=generator)
        out = torch.empty(len(digits), dtype=torch.long)
        for d in range(NUM_DIGITS):
            sel = digits == d
            if sel.any():
                pool = self.by_class[d]
                out[sel] = pool[(u[sel] * len(pool)).long().clamp_max(len(pool) - 1)]
        return out


def render_scenes(layouts: Tensor, pool: DigitPool, size: int, generator: torch.Generator) -> Tensor:
    """Paint layouts (N, 4, 2) onto black size x size canvases: uint8 (N, 3, size, size)."""
    n, cell, side = len(layouts), size // 2, pool.side
    reach = cell // 16
    canvas = torch.zeros(n, 3, size, size, dtype=torch.uint8)
    palette = torch.tensor([rgb for _, rgb in PALETTE]) == 255  # (7, 3): channels a colour lights
    for c in range(len(CELLS)):
        rows = torch.nonzero(layouts[:, c, 0] >= 0).flatten()
        if len(rows) == 0:
            continue
        ink = pool.images[pool.pick(layouts[rows, c, 0], generator)]  # (K, side, side)
        lit = palette[layouts[rows, c, 1]]  # (K, 3)
        shift = torch.randint(-reach, reach + 1, (len(rows), 2), generator=generator)
        top = (c // 2) * cell + (cell - side) // 2 + shift[:, 0]
        left = (c % 2) * cell + (cell - side) // 2 + shift[:, 1]
        painted = ink[:, None] * lit[:, :, None, None]  # (K, 3, side, side)
        for k, r in enumerate(rows.tolist()):
            y, x = int(top[k]), int(left[k])
            canvas[r, :, y : y + side, x : x + side] = painted[k]
    return canvas


def make_scenes(
    n: int, pool: DigitPool, size: int, seed: int, *, heldout_pairs: bool = True, chunk: int = 1024
) -> tuple[Tensor, Tensor]:
    """n scenes drawn from `seed` alone: (uint8 images (n, 3, size, size), layouts (n, 4, 2)).

    Drawn in whole chunks with a seed each, then cut to n: the first k scenes are the same whatever n is.
    """
    images, layouts = [], []
    for start in range(0, n, chunk):
        g = torch.Generator().manual_seed(batch_seed(seed, -2, start // chunk))
        lay = sample_layouts(chunk, g, heldout_pairs=heldout_pairs)
        images.append(render_scenes(lay, pool, size, g))
        layouts.append(lay)
    return torch.cat(images)[:n], torch.cat(layouts)[:n]
