"""Evaluation entry point: `python -m src.evaluate ckpt_path=... num_samples=10000` -> metrics.json."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from src.data.sources import DataFilesMissing
from src.metrics.evaluator import EvalSettings, evaluator_for
from src.metrics.inception import MetricUnavailable
from src.models.factory import CheckpointError, load_module
from src.utils.cli import check_yaml
from src.utils.config import ConfigError


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score a checkpoint's EMA generator; writes `<output_dir>/metrics.json` and returns the metrics."""
    if cfg.num_samples < 2:
        raise ConfigError(f"num_samples must be >= 2 (got {cfg.num_samples})")
    module, train_cfg = load_module(cfg.ckpt_path, map_location=cfg.device)
    datamodule = instantiate(train_cfg.dataset, data_dir=cfg.paths.data_dir, download=False)
    settings = EvalSettings(
        num_samples=cfg.num_samples,
        real_samples=cfg.real_samples,
        heldout=cfg.heldout,
        inception=cfg.inception,
        pr_k=cfg.pr_k,
        kid_subset_size=cfg.kid_subset_size,
        kid_subsets=cfg.kid_subsets,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
    )
    t0 = time.perf_counter()
    evaluator = evaluator_for(datamodule, settings, cfg.paths.cache_dir, cfg.classifier_epochs)
    setup_s = time.perf_counter() - t0
    metrics = evaluator.evaluate(module)
    metrics["timings_s"]["setup_real_data_and_classifier"] = round(setup_s, 3)
    metrics.update(
        {
            "dataset": datamodule.name,
            "num_samples": cfg.num_samples,
            "ckpt_path": str(cfg.ckpt_path),
            "gan_step": module.loaded_gan_step,
        }
    )
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    try:
        evaluate(cfg)
    except (ConfigError, CheckpointError, DataFilesMissing, MetricUnavailable) as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    check_yaml(sys.argv[1:])
    main()
