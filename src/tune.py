"""Hyper-parameter search entry point: `python -m src.tune search=pbt|random|optuna [train overrides]`.

Ray Tune runs a population of `train(cfg)` trials (src/search/); `replay=<schedule.json>` trains a
recorded schedule again without Ray. Ray is the optional `tune` extra: without it, one `error:` line.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from src.search.overrides import apply_lrs, portable, with_params
from src.training import USER_ERRORS, objective_value, train
from src.tuner.recorded import read_schedule
from src.utils.cli import check_argv, run_entry
from src.utils.config import ConfigError

log = logging.getLogger(__name__)


def require_ray() -> None:
    """Raise ConfigError naming the install command when Ray Tune is not installed."""
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.tune") is None:
        raise ConfigError("Ray Tune is not installed: `make install`, or `pip install -e '.[tune]'`")


def replay(cfg: DictConfig, path: str) -> dict[str, float]:
    """Train the schedule in `path` in one run folder: segment i runs its hyper-parameters from its start to
    the next segment's, resuming the previous segment's last.ckpt with the new learning rates applied."""
    try:
        segments, meta = read_schedule(path)
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(f"replay={path}: not a schedule file ({err})") from None
    base = portable(cfg)
    end_step = int(meta.get("max_steps") or cfg.trainer.max_steps)
    metrics: dict[str, float] = {}
    for i, segment in enumerate(segments):
        end = segments[i + 1].start if i + 1 < len(segments) else end_step
        run_cfg = with_params(base, segment.params)
        # Resolved before max_steps moves, so a schedule over trainer.max_steps (ttur_decay) keeps the total.
        run_cfg = OmegaConf.create(OmegaConf.to_container(run_cfg, resolve=True))
        with open_dict(run_cfg):
            run_cfg.trainer.max_steps = end
            run_cfg.ckpt_path = "last" if i > 0 else None
        apply_lrs(run_cfg)
        log.info(
            "replay segment %d/%d: G steps %d-%d with %s",
            i + 1,
            len(segments),
            segment.start,
            end,
            segment.params,
        )
        metrics, _ = train(run_cfg)
    return metrics


def tune_or_replay(cfg: DictConfig) -> dict[str, Any]:
    """Replay `cfg.replay`, or run the search; returns {"objective": value or None, ...details}."""
    if cfg.get("replay"):
        metrics = replay(cfg, str(cfg.replay))
        return {"objective": objective_value(metrics, cfg.get("optimized_metric")), "metrics": metrics}
    require_ray()
    from src.search.runner import run_search  # imports Ray: only once it is known to be there

    summary = run_search(cfg)
    return {"objective": summary["best_objective"], **summary}


@hydra.main(version_base="1.3", config_path="../conf", config_name="tune")
def main(cfg: DictConfig) -> float | None:
    """CLI entry: search (or replay); errors the user can fix end with one `error: ...` line."""
    return run_entry(tune_or_replay, cfg, USER_ERRORS)["objective"]


if __name__ == "__main__":
    check_argv("tune")
    main()
