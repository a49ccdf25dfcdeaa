"""Count chequered patches in a scenes checkpoint's samples: cells whose mean absolute difference between
neighbouring pixels is over a threshold (a drawn digit stays below about 0.25; a chequered blob reads 0.5+).

    python experiments/scene_patches.py <run>/checkpoints/last.ckpt [--per-prompt 128] [--threshold 0.25]

Samples the EMA G for the data set's eight sample prompts (`--per-prompt` noises each, seed 0) and prints
the count per cell of the 2x2 grid, and the same for the live G.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.models.factory import load_module  # noqa: E402


def roughness(images: Tensor, grid: int = 2) -> Tensor:
    """Images (N, C, S, S) in [0, 1] -> mean |neighbour difference| per cell (N, grid * grid)."""
    dy = (images[:, :, 1:, :] - images[:, :, :-1, :]).abs()[:, :, :, :-1]
    dx = (images[:, :, :, 1:] - images[:, :, :, :-1]).abs()[:, :, :-1, :]
    rough = (dx + dy).mean(1)
    side = images.shape[-1] // grid
    cells = [
        rough[:, r * side : (r + 1) * side - 1, c * side : (c + 1) * side - 1].mean((1, 2))
        for r in range(grid)
        for c in range(grid)
    ]
    return torch.stack(cells, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("--per-prompt", type=int, default=128)
    ap.add_argument("--threshold", type=float, default=0.25)
    args = ap.parse_args()
    torch.manual_seed(0)
    module, cfg = load_module(args.ckpt)
    module.eval()
    prompts = list(cfg.dataset.sample_prompts) * args.per_prompt
    z = torch.randn(len(prompts), module.G.z_dim)
    with torch.no_grad():
        for name, ema in (("EMA G", True), ("live G", False)):
            if ema:
                module.refresh_ema_statistics()
            net = module.ema.shadow["generator"] if ema else module.G
            images = (net(z, module.encode_prompts(prompts, ema=ema)) + 1) / 2
            rough = roughness(images)
            over = (rough > args.threshold).sum(0).tolist()
            print(
                f"{name}: {sum(over)} of {rough.numel()} cells over {args.threshold} (by cell {over}); "
                f"roughness median {rough.median():.3f}, max {rough.max():.3f}"
            )


if __name__ == "__main__":
    main()
