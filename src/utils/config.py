"""Config checks that run before anything is trained or written, with one-line messages."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.utils.shapes import plan_resolution


class ConfigError(ValueError):
    """The composed config cannot be trained; the message says which value and why."""


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v  # excludes NaN


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive(v: Any) -> bool:
    return _num(v) and v > 0


def _positive_int(v: Any) -> bool:
    return _int(v) and v >= 1


def _non_negative(v: Any) -> bool:
    return _num(v) and v >= 0


def _betas(v: Any) -> bool:
    return len(v) == 2 and all(_num(b) and 0.0 <= b < 1.0 for b in v)


# (key, check, what it must be). Keys absent from a config are skipped.
RULES: tuple[tuple[str, Any, str], ...] = (
    ("loss.lr_g", _positive, "> 0"),
    ("loss.lr_d", _positive, "> 0"),
    ("loss.optimizer.betas", _betas, "two values in [0, 1)"),
    ("loss.optimizer.weight_decay", _non_negative, ">= 0"),
    ("loss.grad_clip", _non_negative, ">= 0 (0 disables)"),
    ("model.ema_decay", lambda v: _num(v) and 0.0 <= v < 1.0, "in [0, 1)"),
    ("loss.terms.matching_aware", lambda v: _num(v) and 0 <= v < 1, "in [0, 1)"),
    # Loss-term weights: a negative one would silently turn a term into its opposite.
    ("loss.terms.gan_int", _non_negative, ">= 0 (0 disables)"),
    ("loss.terms.contrastive", _non_negative, ">= 0 (0 disables)"),
    ("loss.terms.mode_seeking", _non_negative, ">= 0 (0 disables)"),
    ("loss.terms.mode_seeking_bound", _non_negative, ">= 0 (0 leaves it unbounded)"),
    ("loss.terms.cond_aug_kl", _non_negative, ">= 0"),
    ("loss.terms.instance_noise", _non_negative, ">= 0"),
    ("loss.terms.instance_noise_steps", lambda v: _int(v) and v >= 0, "an integer >= 0"),
    ("model.guard.mode", lambda v: v in ("stop", "skip", "rollback"), "one of stop, skip, rollback"),
    ("model.guard.check_every", _positive_int, "an integer >= 1"),
    ("model.n_sample", _positive_int, "an integer >= 1"),
    ("model.generator.z_dim", _positive_int, "an integer >= 1"),
    ("model.generator.base_channels", _positive_int, "an integer >= 1"),
    ("model.discriminator.base_channels", _positive_int, "an integer >= 1"),
    ("text_encoder.embed_dim", _positive_int, "an integer >= 1"),
    ("text_encoder.channels", _positive_int, "an integer >= 1"),
    ("text_encoder.char_dim", _positive_int, "an integer >= 1"),
    ("text_encoder.num_layers", _positive_int, "an integer >= 1"),
    ("text_encoder.kernel_size", lambda v: _int(v) and v >= 1 and v % 2 == 1, "an odd integer >= 1"),
    ("text_encoder.max_len", _positive_int, "an integer >= 1"),
    ("text_encoder.noise_std", _non_negative, ">= 0 (0 disables)"),
    ("loss.n_critic", _positive_int, "an integer >= 1"),
    ("loss.gp_weight", _non_negative, ">= 0"),
    ("loss.r1_weight", _non_negative, ">= 0"),
    ("loss.drift_weight", _non_negative, ">= 0"),
    ("dataset.batch_size", _positive_int, "an integer >= 1"),
    ("dataset.channels", lambda v: v in (1, 3), "1 or 3"),
    (
        "trainer.max_steps",
        lambda v: v is None or v == -1 or _positive_int(v),
        "-1 (unlimited) or >= 1 G updates",
    ),
    ("seed", _int, "an integer"),
)


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError listing every out-of-range value in a training config."""
    errors: list[str] = []
    for key, check, what in RULES:
        if OmegaConf.select(cfg, key, default="__absent__") == "__absent__":
            continue
        value = _get(cfg, key)
        try:
            ok = bool(check(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            errors.append(f"{key} must be {what} (got {value!r})")
    if (_get(cfg, "loss.terms.contrastive") or 0) > 0 and (
        _get(cfg, "model.discriminator.contrastive_dim") or 0
    ) <= 0:
        errors.append("loss.terms.contrastive > 0 needs model.discriminator.contrastive_dim > 0")
    size = _get(cfg, "dataset.image_size")
    try:
        plan_resolution(int(size))
    except (TypeError, ValueError) as err:
        errors.append(
            f"dataset.image_size: {err}"
            if _int(size)
            else f"dataset.image_size must be an int (got {size!r})"
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
    # Augmentation and ADA carry state (p, r_t) in the weights file when they are on.
    "tuner.augment._target_",
    "tuner.ada._target_",
    "tuner.critic._target_",
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
    # A switch added after a checkpoint was written is absent from it: absent means what it did then.
    a = {**{k: v for k, v in ABSENT_MEANS.items() if k in b}, **a}
    off = (None, False, 0)
    return [
        f"{k}: checkpoint={a.get(k)!r}, now={b.get(k)!r}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k) and not (a.get(k) in off and b.get(k) in off)
    ]


# Architecture switches whose behaviour before they existed was not "off".
ABSENT_MEANS: dict[str, Any] = {}
