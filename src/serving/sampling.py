"""Sampling operations shared by `src.generate` and the demo: batches, prompt walks, inversion, GIFs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from src.serving.sampler import as_sampler
from src.utils.images import grid_image
from src.utils.progress import track


def noise(n: int, z_dim: int, seed: int) -> Tensor:
    """Reproducible standard-normal noise (n, z_dim) from its own CPU generator (global RNG untouched)."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def sample(model: nn.Module, prompts: list[str], z: Tensor, batch_size: int = 500) -> Tensor:
    """EMA images for prompts[i] with z[i]: (N,), (N, z_dim) -> (N, C, H, W) in [-1, 1], in batches."""
    sampler = as_sampler(model)
    starts = range(0, len(prompts), batch_size)
    out = [
        sampler(prompts[i : i + batch_size], z[i : i + batch_size]).cpu()
        for i in track(starts, len(starts), f"sampling {len(prompts)} images")
    ]
    return torch.cat(out)


@torch.no_grad()
def interpolate_prompts(model: nn.Module, a: str, b: str, z: Tensor, steps: int) -> Tensor:
    """Walk the text embedding from a to b at fixed noise: z (R, z_dim) -> (R * steps, C, H, W), row-major.

    Word-level text (1, 1 + L, d) is walked row by row: the ends are exactly a and b; in between, the words
    of both captions are present with weights (1 - w) and w.
    """
    sampler = as_sampler(model)
    ta, tb = sampler.encode([a, b]).chunk(2)
    w = torch.linspace(0, 1, steps, device=ta.device).view(-1, *[1] * (ta.dim() - 1))
    t = torch.lerp(ta, tb, w)  # (steps, ...)
    t = t.repeat(z.shape[0], *[1] * (t.dim() - 1))
    return sampler.synthesize(z.repeat_interleave(steps, 0), t).cpu()


def invert(
    model: nn.Module,
    image: Tensor,
    prompt: str,
    steps: int = 300,
    starts: int = 8,
    lr: float = 0.05,
    prior: float = 1e-3,
    seed: int = 0,
) -> tuple[Tensor, float]:
    """GAN inversion: the z whose EMA image under `prompt` best matches `image` (1, C, H, W) in [-1, 1].

    Adam on z from `starts` random starts (MSE + a small Gaussian prior on z); returns (z (1, z_dim), mse).
    """
    sampler = as_sampler(model)
    t = sampler.encode([prompt])
    t = t.expand(starts, *t.shape[1:])
    target = image.to(t.device)
    z = noise(starts, sampler.z_dim, seed).to(t.device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in track(range(steps), steps, "inverting the image", "step"):
        per_start = (sampler.synthesize(z, t) - target).pow(2).flatten(1).mean(1)
        loss = (per_start + prior * z.pow(2).mean(1)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        per_start = (sampler.synthesize(z, t) - target).pow(2).flatten(1).mean(1)
        best = int(per_start.argmin())
    return z[best : best + 1].detach(), float(per_start[best])


def variations(
    model: nn.Module, image: Tensor, prompt: str, n: int, sigma: float, steps: int, seed: int
) -> tuple[Tensor, float]:
    """Input, reconstruction, n samples around the inverted z: image (1, C, H, W) -> (n + 2, C, H, W)."""
    sampler = as_sampler(model)
    z, mse = invert(sampler, image, prompt, steps=steps, seed=seed)
    zs = torch.cat([z, z + sigma * noise(n, z.shape[1], seed).to(z.device)])
    return torch.cat([image.cpu(), sample(sampler, [prompt] * len(zs), zs)]), mse


def upscale(grid: np.ndarray, min_side: int = 256) -> np.ndarray:
    """Nearest-neighbour enlargement of a uint8 image (H, W, C) by an integer factor, so digits stay crisp."""
    factor = max(1, -(-min_side // max(1, min(grid.shape[:2]))))
    return grid.repeat(factor, 0).repeat(factor, 1)


def interpolation_frames(walk: Tensor, rows: int, steps: int, min_side: int = 112) -> list[np.ndarray]:
    """Prompt walk (rows * steps, C, H, W), row-major -> one uint8 frame (H', W', 3) per step."""
    per_step = walk.view(rows, steps, *walk.shape[1:]).transpose(0, 1)
    return [upscale(grid_image(frame, nrow=rows), min_side) for frame in per_step]


def write_gif(frames: list[np.ndarray], path: str | Path, frame_ms: int = 120) -> Path:
    """uint8 frames (H, W, 3) -> a looping GIF that goes a -> b -> a (ping-pong), `frame_ms` per frame."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    order = frames + frames[-2:0:-1]
    images = [Image.fromarray(f) for f in order]
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return path
