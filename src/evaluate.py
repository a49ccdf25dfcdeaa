"""Evaluation entry point: `python -m src.evaluate ckpt_path=... num_samples=10000` -> metrics.json.

`ckpt_path` is a training checkpoint or an exported bundle (`src.export`): both hold the EMA networks and the
run config, which names the data set to compare with.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from src.data.datamodule import TooFewImages
from src.data.folder import FolderDataError
from src.data.sources import DataFilesMissing
from src.metrics.classifier import ClassifierSettings
from src.metrics.evaluator import EvalSettings, evaluator_for
from src.metrics.inception import MetricUnavailable
from src.metrics.scene_eval import print_scene_table
from src.models.factory import CheckpointError
from src.serving.bundle import BundleError, load_sampler
from src.utils.cli import check_argv, run_entry
from src.utils.config import ConfigError
from src.utils.inputs import check_device, check_ints, checkpoint_path

# Errors that mean "the input is wrong or incomplete": one `error: ...` line, no traceback.
USER_ERRORS = (
    ConfigError,
    CheckpointError,
    BundleError,
    DataFilesMissing,
    FolderDataError,
    TooFewImages,
    MetricUnavailable,
)


def classifier_settings(cfg: DictConfig) -> ClassifierSettings:
    """The reference-classifier settings of an evaluate config."""
    return ClassifierSettings(
        steps=cfg.classifier_steps,
        min_accuracy=cfg.classifier_min_accuracy,
        on_low_accuracy=cfg.classifier_on_low_accuracy,
    )


def check(cfg: DictConfig) -> None:
    """Reject out-of-range settings before any checkpoint is read or model trained."""
    check_ints(
        cfg,
        {
            "num_samples": cfg.pr_k + 1 if isinstance(cfg.pr_k, int) else 2,
            "real_samples": cfg.pr_k + 1 if isinstance(cfg.pr_k, int) else 2,
            "pr_k": 1,
            "batch_size": 1,
            "kid_subset_size": 2,
            "kid_subsets": 1,
            "classifier_steps": 1,
        },
    )
    check_device(cfg.device)
    classifier_settings(cfg)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score a checkpoint's or bundle's EMA generator; writes `<output_dir>/metrics.json` and returns it."""
    check(cfg)
    ckpt = checkpoint_path(cfg)
    sampler = load_sampler(ckpt, device=cfg.device)
    if "dataset" not in sampler.run_config:
        raise ConfigError(f"{ckpt} does not say what data it was trained on (no run config) to compare with")
    datamodule = instantiate(sampler.config.dataset, data_dir=cfg.paths.data_dir, download=False)
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
    evaluator = evaluator_for(datamodule, settings, cfg.paths.cache_dir, classifier_settings(cfg))
    setup_s = time.perf_counter() - t0
    metrics = evaluator.evaluate(sampler)
    metrics["timings_s"]["setup_real_data_and_classifier"] = round(setup_s, 3)
    metrics.update(
        {
            "dataset": datamodule.name,
            "num_samples": cfg.num_samples,
            "ckpt_path": str(ckpt),
            "gan_step": sampler.gan_step,
        }
    )
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))
    if "scene/overall" in metrics:  # digit scenes: the per-category table is what a reader looks at first
        print_scene_table(metrics)
    print(f"wrote {out / 'metrics.json'}", file=sys.stderr)
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    """CLI entry: evaluate; errors the user can fix end the run with one `error: ...` line."""
    run_entry(evaluate, cfg, USER_ERRORS)


if __name__ == "__main__":
    check_argv("evaluate")
    main()
