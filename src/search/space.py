"""Search spaces from config: `search.space` is the run config's tree with a range at each searched leaf.

A leaf is one of `{log_uniform: [lo, hi]}`, `{uniform: [lo, hi]}`, `{choice: [a, b, ...]}` (PBT moves to a
neighbouring entry) or `{grid: [a, b, ...]}` (every value, for random search); keys are flattened to the
dotted config keys each trial overrides (`loss.lr_g`).
"""

from __future__ import annotations

import logging
import random
from typing import Any

from omegaconf import DictConfig, OmegaConf
from ray import tune

from src.utils.config import ConfigError

log = logging.getLogger(__name__)

KINDS = ("log_uniform", "uniform", "choice", "grid")


def _is_leaf(node: Any) -> bool:
    return isinstance(node, dict) and len(node) == 1 and next(iter(node)) in KINDS


def flatten(space: DictConfig | dict | None, prefix: str = "") -> dict[str, tuple[str, list]]:
    """{"loss.lr_g": ("log_uniform", [lo, hi]), ...} from a nested `search.space`."""
    node = OmegaConf.to_container(space, resolve=True) if isinstance(space, DictConfig) else space or {}
    out: dict[str, tuple[str, list]] = {}
    for key, value in node.items():
        path = f"{prefix}{key}"
        if _is_leaf(value):
            kind, values = next(iter(value.items()))
            values = list(values)
            if kind in ("log_uniform", "uniform") and not (len(values) == 2 and values[0] < values[1]):
                raise ConfigError(f"search.space.{path}.{kind} must be [low, high] with low < high")
            if kind == "log_uniform" and values[0] <= 0:
                raise ConfigError(f"search.space.{path}.log_uniform needs low > 0 (got {values[0]})")
            if kind in ("choice", "grid") and not values:
                raise ConfigError(f"search.space.{path}.{kind} is empty")
            out[path] = (kind, values)
        elif isinstance(value, dict):
            out.update(flatten(value, f"{path}."))
        else:
            raise ConfigError(f"search.space.{path}: expected one of {', '.join(KINDS)} (got {value!r})")
    return out


def present(space: dict[str, tuple[str, list]], cfg: DictConfig) -> dict[str, tuple[str, list]]:
    """The searched keys the run config has; a key it lacks (tuner.ada.target without tuner=ada) is dropped
    with a warning, so one search file serves runs with and without that part."""
    kept = {}
    for key, spec in space.items():
        if OmegaConf.select(cfg, key, default="__absent__") == "__absent__":
            log.warning("search.space.%s: not in the run config, not searched", key)
        else:
            kept[key] = spec
    return kept


def domain(kind: str, values: list) -> Any:
    """The Ray Tune distribution a trial's first value is drawn from."""
    if kind == "log_uniform":
        return tune.loguniform(*values)
    if kind == "uniform":
        return tune.uniform(*values)
    if kind == "grid":
        return tune.grid_search(values)
    return tune.choice(values)


def param_space(space: dict[str, tuple[str, list]]) -> dict[str, Any]:
    """Ray's `param_space`: one distribution per dotted key."""
    return {key: domain(kind, values) for key, (kind, values) in space.items()}


def mutations(space: dict[str, tuple[str, list]]) -> dict[str, Any]:
    """PBT's `hyperparam_mutations`: ranges are multiplied (x0.8, x1.2) or resampled, choices step to a
    neighbouring entry (a list), so a batch size stays one of the listed ones."""
    return {
        key: list(values) if kind in ("choice", "grid") else domain(kind, values)
        for key, (kind, values) in space.items()
    }


class ClipToRanges:
    """PBT's `custom_explore_fn`: multiplying by 1.2 every interval would leave a range; clip back into it.
    A class, not a closure: the scheduler is pickled into the experiment's state for resuming."""

    def __init__(self, space: dict[str, tuple[str, list]]) -> None:
        self.bounds = {k: v for k, (kind, v) in space.items() if kind in ("log_uniform", "uniform")}

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        for key, (low, high) in self.bounds.items():
            if key in config:
                config[key] = min(max(config[key], low), high)
        return config


def _nearest(values: list, value: Any) -> Any:
    """The listed entry closest to `value` (itself when listed)."""
    if value in values:
        return value
    try:
        return min(values, key=lambda v: abs(v - value))
    except TypeError:  # not numbers: the first entry
        return values[0]


def _step(kind: str, values: list, value: Any, rng: random.Random) -> Any:
    """One PBT explore step from `value`: x0.8 or x1.2 clipped to the range, or a neighbouring entry."""
    if kind in ("log_uniform", "uniform"):
        return min(max(value * rng.choice((0.8, 1.2)), values[0]), values[1])
    i = values.index(value)
    return values[min(max(i + rng.choice((-1, 1)), 0), len(values) - 1)]


def around(
    space: dict[str, tuple[str, list]], cfg: DictConfig, count: int, seed: int
) -> list[dict[str, Any]]:
    """`count` starting configs: the run config's own values (its recipe), then each of the others one
    explore step away from them in every searched key (what PBT would make of the recipe), no two alike
    while the space has neighbours enough."""
    recipe = {}
    for key, (kind, values) in space.items():
        value = OmegaConf.select(cfg, key)
        kept = min(max(value, values[0]), values[1]) if kind in ("log_uniform", "uniform") else None
        kept = _nearest(values, value) if kept is None else kept
        if kept != value:
            log.warning(
                "search.space.%s: the recipe's %r is outside the range; starting from %r", key, value, kept
            )
        recipe[key] = kept
    rng = random.Random(seed)
    points = [recipe]
    for _ in range(count - 1):
        # A repeated point trains the same weights twice (same config, same seed): redraw, a bounded
        # number of times, since a small space may have fewer neighbours than the population.
        for _try in range(64):
            point = {key: _step(*space[key], value, rng) for key, value in recipe.items()}
            if point not in points:
                break
        points.append(point)
    return points
