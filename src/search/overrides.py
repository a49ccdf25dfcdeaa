"""Run configs with a trial's (or a schedule segment's) hyper-parameters; no Ray needed (replay uses it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

# Keys of the tune config that are not part of a training run.
TUNE_ONLY = ("tune", "search", "replay")


def portable(cfg: DictConfig) -> dict[str, Any]:
    """The training part of `cfg` as a plain dict another process can rebuild: `paths` resolved to absolute
    folders (Hydra's resolvers and the launch folder exist only here), everything else left unresolved so
    that `${loss.n_critic}`-style links follow the values a trial sets."""
    paths = OmegaConf.to_container(cfg.paths, resolve=True)
    out = OmegaConf.to_container(cfg, resolve=False)
    out["paths"] = {k: str(Path(v).resolve()) if isinstance(v, str) else v for k, v in paths.items()}
    for key in TUNE_ONLY:
        out.pop(key, None)
    return out


def with_params(base: dict[str, Any], params: dict[str, Any]) -> DictConfig:
    """The run config with dotted-key overrides ({"loss.lr_g": 1e-4}) applied before anything resolves."""
    cfg = OmegaConf.create(base)
    for key, value in params.items():
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def add_callback(cfg: DictConfig, name: str, node: dict[str, Any]) -> None:
    """Append a callback to `cfg.callbacks`; it runs after the configured ones (so after the evaluation)."""
    with open_dict(cfg):
        if cfg.get("callbacks") is None:
            cfg.callbacks = {}
        cfg.callbacks[name] = node


def apply_lrs(cfg: DictConfig) -> None:
    """Make a resumed run use `cfg.loss.lr_g/lr_d`, not the lrs saved with its optimizers."""
    node = {"_target_": "src.tuner.recorded.ApplyLearningRates", "lr_g": cfg.loss.lr_g, "lr_d": cfg.loss.lr_d}
    add_callback(cfg, "apply_lrs", node)
