"""How much two real scenes of one layout differ, in the units of the mode-seeking ratio: the data's own
bound for `loss.terms.mode_seeking_bound` (DSGAN's tau).

    python experiments/scene_spread.py --data ../shared/data [--size 32] [--scenes 4096]

Renders each of `--scenes` random layouts twice (other MNIST drawings of the same digits, other offsets)
and prints mean |a - b| over pixels in [-1, 1], divided by E|z_a - z_b| = 2 / sqrt(pi) of two standard
normal noises: the ratio the mode-seeking term measures for two noises of one caption. Independent
layouts are printed beside it, as the spread of captions that leave everything free.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.scenes import DigitPool, render_scenes, sample_layouts  # noqa: E402
from src.data.sources import load_mnist  # noqa: E402

NOISE_DISTANCE = 2 / math.sqrt(math.pi)  # E|z_a - z_b| per coordinate for z_a, z_b ~ N(0, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--scenes", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    images, labels = load_mnist(args.data, train=True, download=False)
    pool = DigitPool(images, labels, args.size)

    def draw(layouts: torch.Tensor, seed: int) -> torch.Tensor:
        return (
            render_scenes(layouts, pool, args.size, torch.Generator().manual_seed(seed)).float() / 127.5 - 1
        )

    same = sample_layouts(args.scenes, torch.Generator().manual_seed(args.seed))
    other = sample_layouts(args.scenes, torch.Generator().manual_seed(args.seed + 1))
    a, b, c = draw(same, args.seed + 2), draw(same, args.seed + 3), draw(other, args.seed + 4)
    for name, x, y in (("same layout", a, b), ("independent layouts", a, c)):
        d = (x - y).abs().mean().item()
        print(f"{name:20s} mean |a - b| {d:.4f}  ratio {d / NOISE_DISTANCE:.4f}")


if __name__ == "__main__":
    main()
