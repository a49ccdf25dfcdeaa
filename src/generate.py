"""Sampling: `python -m src.generate ckpt_path=... prompts='[...]' n_per_prompt=64 output_dir=...`.

Writes `grid.png` (one row per prompt) and `samples.npz` (`images`: uint8 (N, H, W, C), `prompts`: (N,)).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from src.data.captions import CaptionSpec
from src.models.factory import CheckpointError, load_module
from src.models.gan_module import TextGAN
from src.utils.cli import check_yaml
from src.utils.config import ConfigError
from src.utils.images import save_grid, to_uint8


def check_prompts(prompts: list[str]) -> list[str]:
    """Reject empty/whitespace prompts with a clear error; anything else (any characters) is accepted."""
    if not prompts:
        raise ConfigError("prompts is empty: give at least one prompt")
    bad = [i for i, p in enumerate(prompts) if not isinstance(p, str) or not p.strip()]
    if bad:
        raise ConfigError(f"prompt(s) at position {bad} are empty: every prompt needs some text")
    return [str(p) for p in prompts]


def default_prompts(train_cfg: DictConfig) -> list[str]:
    """One prompt per class, from the checkpoint's data set captions."""
    cap = train_cfg.dataset.captions
    return CaptionSpec(tuple(cap.class_names), tuple(cap.templates)).prompts()


@torch.no_grad()
def sample(module: TextGAN, prompts: list[str], z: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """EMA images for prompts[i] with z[i]: (N,), (N, z_dim) -> (N, C, H, W) in [-1, 1], in batches."""
    out = [
        module.generate(prompts[i : i + batch_size], z[i : i + batch_size]).cpu()
        for i in range(0, len(prompts), batch_size)
    ]
    return torch.cat(out)


@torch.no_grad()
def interpolate_prompts(module: TextGAN, a: str, b: str, z: torch.Tensor, steps: int) -> torch.Tensor:
    """Walk the text embedding from a to b at fixed noise: z (R, z_dim) -> (R * steps, C, H, W), row-major."""
    ta, tb = module.encode_prompts([a, b]).chunk(2)
    w = torch.linspace(0, 1, steps, device=ta.device)[:, None]
    t = ((1 - w) * ta + w * tb).repeat(z.shape[0], 1)
    zz = z.to(ta.device).repeat_interleave(steps, 0)
    return module.ema.shadow["generator"](zz, t).cpu()


def invert(
    module: TextGAN,
    image: torch.Tensor,
    prompt: str,
    steps: int = 300,
    starts: int = 8,
    lr: float = 0.05,
    prior: float = 1e-3,
    seed: int = 0,
) -> tuple[torch.Tensor, float]:
    """GAN inversion: the z whose EMA image under `prompt` best matches `image` (1, C, H, W) in [-1, 1].

    Adam on z from `starts` random starts (MSE + a small Gaussian prior on z); returns (z (1, z_dim), mse).
    """
    g_ema = module.ema.shadow["generator"]
    with torch.no_grad():
        t = module.encode_prompts([prompt]).expand(starts, -1)
    target = image.to(t.device)
    z = torch.randn(starts, g_ema.z_dim, generator=torch.Generator().manual_seed(seed)).to(t.device)
    z.requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        per_start = (g_ema(z, t) - target).pow(2).flatten(1).mean(1)
        loss = (per_start + prior * z.pow(2).mean(1)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        per_start = (g_ema(z, t) - target).pow(2).flatten(1).mean(1)
        best = int(per_start.argmin())
    return z[best : best + 1].detach(), float(per_start[best])


def like(module: TextGAN, cfg: DictConfig, prompt: str, out_dir: Path) -> dict[str, Any]:
    """Variations of a given image: invert it under `prompt`, then sample around its z. Writes like.png."""
    from src.data.folder import load_image

    path = Path(cfg.like)
    if not path.is_file():
        raise ConfigError(f"like={path} is not a file")
    g = module.ema.shadow["generator"]
    pixels = torch.from_numpy(load_image(path, g.image_size, g.channels))[None].float() / 127.5 - 1.0
    z, mse = invert(module, pixels, prompt, steps=cfg.like_steps, seed=cfg.seed)
    noise = torch.randn(cfg.n_per_prompt, z.shape[1], generator=torch.Generator().manual_seed(cfg.seed))
    zs = torch.cat([z, z + cfg.like_sigma * noise.to(z.device)])
    images = sample(module, [prompt] * len(zs), zs)
    row = torch.cat([pixels, images])  # input | reconstruction | variations
    save_grid(row, out_dir / "like.png", nrow=len(row))
    return {"like": out_dir / "like.png", "like_mse": mse}


def generate(cfg: DictConfig) -> dict[str, Any]:
    """Load a checkpoint, sample, write grid.png and samples.npz; returns paths and arrays."""
    module, train_cfg = load_module(cfg.ckpt_path, map_location=cfg.device)
    if cfg.n_per_prompt < 1:
        raise ConfigError(f"n_per_prompt must be >= 1 (got {cfg.n_per_prompt})")
    prompts = check_prompts(list(cfg.prompts)) if cfg.prompts is not None else default_prompts(train_cfg)
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(cfg.seed)
    flat = [p for p in prompts for _ in range(cfg.n_per_prompt)]
    z = torch.randn(len(flat), module.G.z_dim, generator=g)
    images = sample(module, flat, z, cfg.batch_size)
    save_grid(images, out_dir / "grid.png", nrow=cfg.n_per_prompt)
    arr = to_uint8(images).permute(0, 2, 3, 1).numpy()
    np.savez_compressed(out_dir / "samples.npz", images=arr, prompts=np.array(flat))
    result: dict[str, Any] = {
        "grid": out_dir / "grid.png",
        "npz": out_dir / "samples.npz",
        "images": arr,
        "prompts": flat,
    }
    if cfg.get("interpolate"):
        a, b = check_prompts(list(cfg.interpolate))
        rows = torch.randn(4, module.G.z_dim, generator=g)
        walk = interpolate_prompts(module, a, b, rows, cfg.interpolation_steps)
        save_grid(walk, out_dir / "interpolation.png", nrow=cfg.interpolation_steps)
        result["interpolation"] = out_dir / "interpolation.png"
    if cfg.get("like"):
        result.update(like(module, cfg, prompts[0], out_dir))
    print(f"wrote {result['grid']} and {result['npz']} ({len(flat)} images)")
    return result


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
def main(cfg: DictConfig) -> None:
    try:
        generate(cfg)
    except (ConfigError, CheckpointError) as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    check_yaml(sys.argv[1:])
    main()
