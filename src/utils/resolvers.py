"""OmegaConf resolvers the configs use, registered when `src` is imported (before any config resolves)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


def ensure_dir(path: str) -> str:
    """`${ensure_dir:path}`: create the folder while the config resolves; returns the path."""
    Path(path).mkdir(parents=True, exist_ok=True)
    return path


def if_positive(weight: float, value: int) -> int:
    """`${if_positive:weight,value}`: value when weight > 0, else 0 (e.g. heads a loss term needs)."""
    return value if float(weight) > 0 else 0


def register() -> None:
    """Register every resolver once (a second import or call is a no-op)."""
    for name, fn in (("ensure_dir", ensure_dir), ("if_positive", if_positive)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
