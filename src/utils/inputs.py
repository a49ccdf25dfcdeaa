"""Checks of what a user passes to `src.generate` / `src.evaluate`; each fails with a one-line ConfigError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from src.utils.config import ConfigError

# Where `src.train` puts its run folders below `paths.log_dir` (see conf/hydra/default.yaml).
RUN_GLOBS = ("train/runs/*/checkpoints/last.ckpt", "train/multiruns/*/*/checkpoints/last.ckpt")


def latest_checkpoint(log_dir: str | Path) -> Path:
    """The most recently written `last.ckpt` of any training run or multirun job under `log_dir`."""
    root = Path(log_dir)
    found = [p for pattern in RUN_GLOBS for p in root.glob(pattern) if p.is_file()]
    if not found:
        raise ConfigError(
            f"ckpt_path=latest but no training run under {root} has a checkpoint "
            f"({root}/{RUN_GLOBS[0]}); train one first, or give ckpt_path=<file> (or paths.log_dir=...)"
        )
    return max(found, key=lambda p: p.stat().st_mtime)


def checkpoint_path(cfg: DictConfig) -> Path:
    """`cfg.ckpt_path` as a path: `latest` is resolved under `paths.log_dir`; an unset value is an error."""
    if OmegaConf.is_missing(cfg, "ckpt_path") or cfg.ckpt_path in (None, ""):
        raise ConfigError("give a checkpoint: ckpt_path=<run>/checkpoints/last.ckpt, or ckpt_path=latest")
    if str(cfg.ckpt_path) == "latest":
        return latest_checkpoint(cfg.paths.log_dir)
    return Path(str(cfg.ckpt_path))


def check_device(device: str) -> str:
    """The device string if torch can use it here; a ConfigError naming the problem otherwise."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device={device!r} is not a torch device (cpu, cuda, cuda:1, mps)") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device} but no CUDA device is available here; use device=cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"device={device} but only {torch.cuda.device_count()} CUDA device(s) exist")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={device} but MPS is not available here; use device=cpu")
    return device


def check_ints(cfg: DictConfig, minimums: dict[str, int]) -> None:
    """Every `cfg[key]` must be an integer >= its minimum; one ConfigError lists all that are not."""
    bad = []
    for key, low in minimums.items():
        value: Any = OmegaConf.select(cfg, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            bad.append(f"{key} must be an integer >= {low} (got {value!r})")
    if bad:
        raise ConfigError("; ".join(bad))


def check_prompts(prompts: Any, key: str = "prompts") -> list[str]:
    """A non-empty list of non-blank strings (one bare string is one prompt); anything else a ConfigError."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not OmegaConf.is_list(prompts) and not isinstance(prompts, list | tuple):
        raise ConfigError(
            f'{key} must be a list of text, e.g. {key}=\'["a red bird","a cat"]\' (got {prompts!r})'
        )
    prompts = list(prompts)
    if not prompts:
        raise ConfigError(f"{key} is empty: give at least one prompt")
    not_text = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
    if not_text:
        raise ConfigError(
            f"{key} at position {not_text} are not text (quote them): {[prompts[i] for i in not_text]}"
        )
    blank = [i for i, p in enumerate(prompts) if not p.strip()]
    if blank:
        raise ConfigError(f"prompt(s) at position {blank} are empty: every prompt needs some text")
    return prompts
