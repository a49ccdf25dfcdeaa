"""Sampling: `python -m src.generate ckpt_path=... prompts='[...]' n_per_prompt=64 output_dir=...`.

Writes `grid.png` (one row per prompt), `samples.npz` (`images`: uint8 (N, H, W, C), `prompts`: (N,)) and,
with `per_sample=true`, one PNG per image in `samples/` (the folder layout clean-fid and torch-fidelity read).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from PIL import Image

from src.data.captions import CaptionSpec
from src.data.folder import FolderDataError
from src.data.sources import DataFilesMissing
from src.models.factory import CheckpointError, load_module
from src.models.gan_module import TextGAN
from src.utils.cli import check_overrides, check_yaml, silence_known_noise
from src.utils.config import ConfigError
from src.utils.images import save_grid, to_uint8
from src.utils.inputs import check_device, check_ints, check_prompts, checkpoint_path
from src.utils.progress import track

# Errors that mean "the input is wrong or incomplete": one `error: ...` line, no traceback.
USER_ERRORS = (ConfigError, CheckpointError, DataFilesMissing, FolderDataError)
PER_SAMPLE_NAME = re.compile(r"^\d+_[a-z0-9-]*\.png$")


def default_prompts(train_cfg: DictConfig, data_dir: str) -> list[str]:
    """One prompt per class from the checkpoint's captions; a captioned folder's own sample prompts."""
    cap = train_cfg.dataset.get("captions")
    if cap is not None:
        return CaptionSpec(tuple(cap.class_names), tuple(cap.templates)).prompts()
    if train_cfg.dataset.get("sample_prompts"):
        return list(train_cfg.dataset.sample_prompts)
    # A folder's grid prompts are its first captions: read them where the folder is (given, or as trained).
    for where in dict.fromkeys([data_dir, str(train_cfg.dataset.get("data_dir") or data_dir)]):
        try:
            return list(instantiate(train_cfg.dataset, data_dir=where).sample_prompts)
        except (DataFilesMissing, FolderDataError):
            continue
    raise ConfigError(
        "this checkpoint was trained on a captioned folder that is not at paths.data_dir: give "
        "prompts='[\"...\"]', or paths.data_dir=<the folder> to use its first captions"
    )


def slug(text: str, limit: int = 48) -> str:
    """'A red bird!' -> 'a-red-bird': a file-name-safe digest of a prompt (may be empty)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].rstrip("-")


def write_per_sample(images: np.ndarray, prompts: list[str], folder: Path) -> Path:
    """uint8 images (N, H, W, C) -> `folder/<i>_<slug of prompt i>.png`; older files of this kind go first."""
    folder.mkdir(parents=True, exist_ok=True)
    # A previous, larger run into the same folder would otherwise leave extra images that a metric reads.
    for old in folder.iterdir():
        if PER_SAMPLE_NAME.match(old.name):
            old.unlink()
    width = len(str(len(images) - 1))
    for i in track(range(len(images)), len(images), f"writing {len(images)} PNGs", "image"):
        arr = images[i][..., 0] if images.shape[-1] == 1 else images[i]
        Image.fromarray(arr).save(folder / f"{i:0{width}d}_{slug(prompts[i])}.png")
    return folder


@torch.no_grad()
def sample(module: TextGAN, prompts: list[str], z: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """EMA images for prompts[i] with z[i]: (N,), (N, z_dim) -> (N, C, H, W) in [-1, 1], in batches."""
    starts = range(0, len(prompts), batch_size)
    out = [
        module.generate(prompts[i : i + batch_size], z[i : i + batch_size]).cpu()
        for i in track(starts, len(starts), f"sampling {len(prompts)} images")
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
    for _ in track(range(steps), steps, "inverting the image", "step"):
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
    try:
        pixels = torch.from_numpy(load_image(path, g.image_size, g.channels))[None].float() / 127.5 - 1.0
    except (OSError, ValueError) as err:  # PIL's UnidentifiedImageError is an OSError
        raise ConfigError(f"like={path} is not a readable image ({type(err).__name__})") from err
    z, mse = invert(module, pixels, prompt, steps=cfg.like_steps, seed=cfg.seed)
    noise = torch.randn(cfg.n_per_prompt, z.shape[1], generator=torch.Generator().manual_seed(cfg.seed))
    zs = torch.cat([z, z + cfg.like_sigma * noise.to(z.device)])
    images = sample(module, [prompt] * len(zs), zs)
    row = torch.cat([pixels, images])  # input | reconstruction | variations
    save_grid(row, out_dir / "like.png", nrow=len(row))
    return {"like": out_dir / "like.png", "like_mse": mse}


def check(cfg: DictConfig) -> None:
    """Reject out-of-range settings and unusable prompts before the checkpoint is read."""
    check_ints(cfg, {"n_per_prompt": 1, "batch_size": 1, "interpolation_steps": 2, "like_steps": 1})
    check_device(cfg.device)
    if cfg.prompts is not None:
        check_prompts(cfg.prompts)
    if cfg.get("interpolate") and len(check_prompts(cfg.interpolate, "interpolate")) != 2:
        raise ConfigError(f"interpolate needs exactly two prompts (got {len(cfg.interpolate)})")


def generate(cfg: DictConfig) -> dict[str, Any]:
    """Load a checkpoint, sample, write grid.png, samples.npz (and samples/*.png); returns paths, arrays."""
    check(cfg)
    module, train_cfg = load_module(checkpoint_path(cfg), map_location=cfg.device)
    if cfg.prompts is not None:
        prompts = check_prompts(cfg.prompts)
    else:
        prompts = default_prompts(train_cfg, cfg.paths.data_dir)
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
    if cfg.get("per_sample"):
        result["per_sample"] = write_per_sample(arr, flat, out_dir / "samples")
    if cfg.get("interpolate"):
        a, b = check_prompts(cfg.interpolate, "interpolate")
        rows = torch.randn(4, module.G.z_dim, generator=g)
        walk = interpolate_prompts(module, a, b, rows, cfg.interpolation_steps)
        save_grid(walk, out_dir / "interpolation.png", nrow=cfg.interpolation_steps)
        result["interpolation"] = out_dir / "interpolation.png"
    if cfg.get("like"):
        result.update(like(module, cfg, prompts[0], out_dir))
    also = f" and {result['per_sample']}/ (one PNG per image)" if "per_sample" in result else ""
    print(f"wrote {result['grid']}, {result['npz']}{also} ({len(flat)} images)")
    return result


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
def main(cfg: DictConfig) -> None:
    """CLI entry: generate; errors the user can fix end the run with one `error: ...` line."""
    silence_known_noise()
    try:
        generate(cfg)
    except USER_ERRORS as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    check_yaml(sys.argv[1:])
    check_overrides(sys.argv[1:], "generate")
    main()
