"""Sampling: `python -m src.generate ckpt_path=... prompts='[...]' n_per_prompt=64 output_dir=...`.

Writes `grid.png` (one row per prompt) and `samples.npz` (`images`: uint8 (N, H, W, C), `prompts`: (N,)).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from src.data.captions import CaptionSpec
from src.models.factory import CheckpointError, load_module
from src.models.gan_module import TextGAN
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
    print(f"wrote {result['grid']} and {result['npz']} ({len(flat)} images)")
    return result


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
def main(cfg: DictConfig) -> None:
    try:
        generate(cfg)
    except (ConfigError, CheckpointError) as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
