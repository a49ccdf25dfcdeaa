"""Training entry point: `python -m src.train [hydra overrides]` (the work itself is src/training.py)."""

from __future__ import annotations

import re

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from src.training import USER_ERRORS, objective_value, train
from src.utils.cli import check_argv, silence_known_noise
from src.utils.distributed import hydra_argv_for_ddp_children


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """CLI entry: train; errors the user can fix end the run with one `error: ...` line."""
    silence_known_noise()
    try:
        hydra_argv_for_ddp_children()
        metrics, _ = train(cfg)
        return objective_value(metrics, cfg.get("optimized_metric"))
    except USER_ERRORS as err:
        raise SystemExit(f"error: {err}") from None
    except InstantiationException as err:
        # A constructor refusing a config value the user gave (trainer.max_time=abc) reads as one line naming
        # the config node; any other failure to build something keeps its traceback.
        if not isinstance(err.__cause__, USER_ERRORS):
            raise
        node = re.search(r"full_key: (\S+)", str(err))
        raise SystemExit(f"error: {node.group(1) + ': ' if node else ''}{err.__cause__}") from None


if __name__ == "__main__":
    check_argv("train")
    main()
