"""Config checks that run before anything is trained or written, with one-line messages."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.models.components.layers import plan_resolution


class ConfigError(ValueError):
    """The composed config cannot be trained; the message says which value and why."""


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError listing every out-of-range value in a training config."""
    errors: list[str] = []

    def need(ok: bool, msg: str) -> None:
        if not ok:
            errors.append(msg)

    for key in ("model.lr_g", "model.lr_d"):
        v = _get(cfg, key)
        need(isinstance(v, int | float) and v > 0, f"{key} must be > 0 (got {v})")
    n_critic = _get(cfg, "loss.n_critic")
    need(
        isinstance(n_critic, int) and n_critic >= 1, f"loss.n_critic must be an integer >= 1 (got {n_critic})"
    )
    bs = _get(cfg, "dataset.batch_size")
    need(isinstance(bs, int) and bs >= 1, f"dataset.batch_size must be an integer >= 1 (got {bs})")
    for key in ("loss.gp_weight", "loss.r1_weight"):
        v = _get(cfg, key)
        need(v is None or (isinstance(v, int | float) and v >= 0), f"{key} must be >= 0 (got {v})")
    decay = _get(cfg, "model.ema_decay")
    need(decay is None or 0.0 <= decay < 1.0, f"model.ema_decay must be in [0, 1) (got {decay})")
    steps = _get(cfg, "trainer.max_steps")
    need(
        steps is None or steps == -1 or (isinstance(steps, int) and steps >= 1),
        f"trainer.max_steps must be -1 (unlimited) or >= 1 G updates (got {steps})",
    )
    betas = _get(cfg, "model.betas")
    need(
        betas is None or (len(betas) == 2 and all(0.0 <= b < 1.0 for b in betas)),
        f"model.betas must be two values in [0, 1) (got {betas})",
    )
    size = _get(cfg, "dataset.image_size")
    try:
        plan_resolution(int(size))
    except (TypeError, ValueError) as err:
        errors.append(
            f"dataset.image_size: {err}" if isinstance(err, ValueError) else f"bad image_size {size}"
        )
    if errors:
        raise ConfigError("invalid config: " + "; ".join(errors))


# Config keys that fix the shapes of the saved weights: a checkpoint must agree on all of them.
ARCH_KEYS = (
    "model.generator",
    "model.discriminator",
    "text_encoder",
    "dataset.image_size",
    "dataset.channels",
)


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(f"{prefix}.{k}", v))
        return out
    return {prefix: value}


def arch_signature(cfg: DictConfig | dict) -> dict[str, Any]:
    """Flat {key: value} of the architecture-defining part of a (resolved) config."""
    cfg = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    out: dict[str, Any] = {}
    for key in ARCH_KEYS:
        node = OmegaConf.select(cfg, key, default=None)
        value = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
        out.update(_flatten(key, value))
    return out


def arch_differences(stored: dict, current: DictConfig) -> list[str]:
    """Human-readable differences 'key: checkpoint=a, now=b' between two configs' architectures."""
    a, b = arch_signature(stored), arch_signature(current)
    return [
        f"{k}: checkpoint={a.get(k)!r}, now={b.get(k)!r}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]
