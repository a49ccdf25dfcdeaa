"""Sampling: `python -m src.generate ckpt_path=... prompts='[...]' n_per_prompt=64 output_dir=...`.

`ckpt_path` is a training checkpoint or an exported bundle (`src.export`). Writes `grid.png` (one row per
prompt), `samples.npz` (`images`: uint8 (N, H, W, C), `prompts`: (N,)) and, with `per_sample=true`, one PNG
per image in `samples/` (the folder layout clean-fid and torch-fidelity read).
"""

from __future__ import annotations

import re
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
from src.models.factory import CheckpointError
from src.serving.bundle import BundleError, load_sampler
from src.serving.sampler import Sampler
from src.serving.sampling import (
    interpolate_prompts,
    interpolation_frames,
    invert,
    sample,
    variations,
    write_gif,
)
from src.utils.cli import check_argv, run_entry
from src.utils.config import ConfigError
from src.utils.images import save_grid, to_uint8
from src.utils.inputs import check_device, check_ints, check_prompts, checkpoint_path
from src.utils.progress import track

# Errors that mean "the input is wrong or incomplete": one `error: ...` line, no traceback.
USER_ERRORS = (ConfigError, CheckpointError, BundleError, DataFilesMissing, FolderDataError)
# Re-exported: callers and tests import the sampling operations from here as before.
__all__ = ["generate", "interpolate_prompts", "invert", "sample"]
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


def like(sampler: Sampler, cfg: DictConfig, prompt: str, out_dir: Path) -> dict[str, Any]:
    """Variations of a given image: invert it under `prompt`, then sample around its z. Writes like.png."""
    from src.data.folder import load_image

    path = Path(cfg.like)
    if not path.is_file():
        raise ConfigError(f"like={path} is not a file")
    try:
        pixels = load_image(path, sampler.image_size, sampler.channels)
    except (OSError, ValueError) as err:  # PIL's UnidentifiedImageError is an OSError
        raise ConfigError(f"like={path} is not a readable image ({type(err).__name__})") from err
    image = torch.from_numpy(np.array(pixels))[None].float() / 127.5 - 1.0
    row, mse = variations(sampler, image, prompt, cfg.n_per_prompt, cfg.like_sigma, cfg.like_steps, cfg.seed)
    save_grid(row, out_dir / "like.png", nrow=len(row))  # input | reconstruction | variations
    return {"like": out_dir / "like.png", "like_mse": mse}


def check(cfg: DictConfig) -> None:
    """Reject out-of-range settings and unusable prompts before the checkpoint is read."""
    check_ints(
        cfg,
        {"n_per_prompt": 1, "batch_size": 1, "interpolation_steps": 2, "like_steps": 1, "gif_frame_ms": 1},
    )
    check_device(cfg.device)
    if cfg.prompts is not None:
        check_prompts(cfg.prompts)
    if cfg.get("interpolate") and len(check_prompts(cfg.interpolate, "interpolate")) != 2:
        raise ConfigError(f"interpolate needs exactly two prompts (got {len(cfg.interpolate)})")
    if cfg.get("gif") and not cfg.get("interpolate"):
        raise ConfigError('gif=true animates the prompt walk; add interpolate=\'["digit 1","digit 7"]\'')


def generate(cfg: DictConfig) -> dict[str, Any]:
    """Load a checkpoint or bundle, sample, write grid.png, samples.npz (and samples/*.png); returns paths."""
    check(cfg)
    sampler = load_sampler(checkpoint_path(cfg), device=cfg.device)
    if cfg.prompts is not None:
        prompts = check_prompts(cfg.prompts)
    else:
        prompts = default_prompts(sampler.config, cfg.paths.data_dir)
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(cfg.seed)
    flat = [p for p in prompts for _ in range(cfg.n_per_prompt)]
    z = torch.randn(len(flat), sampler.z_dim, generator=g)
    images = sample(sampler, flat, z, cfg.batch_size)
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
        rows = torch.randn(4, sampler.z_dim, generator=g)
        walk = interpolate_prompts(sampler, a, b, rows, cfg.interpolation_steps)
        save_grid(walk, out_dir / "interpolation.png", nrow=cfg.interpolation_steps)
        result["interpolation"] = out_dir / "interpolation.png"
        if cfg.get("gif"):
            frames = interpolation_frames(walk, len(rows), cfg.interpolation_steps)
            result["gif"] = write_gif(frames, out_dir / "interpolation.gif", cfg.gif_frame_ms)
    if cfg.get("like"):
        result.update(like(sampler, cfg, prompts[0], out_dir))
    also = f" and {result['per_sample']}/ (one PNG per image)" if "per_sample" in result else ""
    also += "".join(f", {result[k]}" for k in ("interpolation", "gif", "like") if k in result)
    print(f"wrote {result['grid']}, {result['npz']}{also} ({len(flat)} images)")
    return result


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
def main(cfg: DictConfig) -> None:
    """CLI entry: generate; errors the user can fix end the run with one `error: ...` line."""
    run_entry(generate, cfg, USER_ERRORS)


if __name__ == "__main__":
    check_argv("generate")
    main()
