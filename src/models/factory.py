"""Build the LightningModule from a config, and load it back from a PixelGAN checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.models.gan_module import TextGAN
from src.tuner.bundle import Tuner
from src.utils.config import arch_differences
from src.utils.torch_files import read_torch_file

# Checkpoints record the layout of their config; older layouts cannot be rebuilt by this code.
CHECKPOINT_FORMAT = 2


class CheckpointError(ValueError):
    """A file is not a usable PixelGAN checkpoint for this config."""


def build_module(cfg: DictConfig) -> TextGAN:
    """Instantiate text encoder, loss, tuner, G, D and the module from `cfg.text_encoder/loss/tuner/model`."""
    tuner = cfg.get("tuner") or {}
    # Built objects go to the partial, not through instantiate's kwargs, which would turn dataclasses
    # (Objective, Tuner) back into configs.
    make = instantiate(cfg.model, _partial_=True)
    return make(
        text_encoder=instantiate(cfg.text_encoder),
        loss=instantiate(cfg.loss),
        tuner=Tuner(
            augment=instantiate(tuner.get("augment")),
            ada=instantiate(tuner.get("ada")),
            critic=instantiate(tuner.get("critic")),
            schedule=instantiate(tuner.get("schedule")),
        ),
    )


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """torch.load a PixelGAN checkpoint (weights_only), with a one-line error for anything else."""
    path = Path(path)
    missing, unreadable = f"checkpoint {path} does not exist", f"{path} is not a readable checkpoint"
    return checked_checkpoint(read_torch_file(path, CheckpointError, missing, unreadable), path)


def checked_checkpoint(ckpt: Any, path: str | Path) -> dict[str, Any]:
    """The loaded object itself if it is a PixelGAN checkpoint of this format, else a CheckpointError."""
    if not isinstance(ckpt, dict) or "pixelgan_cfg" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a PixelGAN checkpoint (no pixelgan_cfg/state_dict)")
    fmt = ckpt["pixelgan_cfg"].get("checkpoint_format", 1)
    if fmt != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} was written by PixelGAN with checkpoint format {fmt}; this version reads format "
            f"{CHECKPOINT_FORMAT} (loss terms moved to `loss`, G/D variants to model/generator and "
            "model/discriminator): retrain, or use the release that wrote it"
        )
    return ckpt


def check_compatible(ckpt: dict[str, Any], cfg: DictConfig, path: str | Path) -> None:
    """Raise CheckpointError naming every architecture key where checkpoint and config differ."""
    diffs = arch_differences(ckpt["pixelgan_cfg"], cfg)
    if diffs:
        raise CheckpointError(f"{path} comes from an incompatible config: " + "; ".join(diffs))


def load_module(
    path: str | Path, map_location: str = "cpu", ckpt: dict[str, Any] | None = None
) -> tuple[TextGAN, DictConfig]:
    """Rebuild the module from the config stored in a checkpoint and load its weights; `ckpt`, the file
    already loaded by the caller, saves reading it again (it is checked all the same)."""
    ckpt = read_checkpoint(path) if ckpt is None else checked_checkpoint(ckpt, path)
    cfg = OmegaConf.create(ckpt["pixelgan_cfg"])
    module = build_module(cfg)
    module.load_state_dict(ckpt["state_dict"])
    module.run_config = ckpt["pixelgan_cfg"]
    module.loaded_gan_step = int(ckpt.get("pixelgan_gan_step", -1))
    return module.to(map_location).eval(), cfg
