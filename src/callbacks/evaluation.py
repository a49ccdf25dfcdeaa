"""Cheap metrics during training (reference-classifier accuracy, classifier-FID, precision/recall),
logged every N G updates; the best checkpoint by a chosen metric is kept as `best.ckpt`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer

from src.callbacks.periodic import EveryNGanSteps
from src.metrics.classifier import ClassifierSettings
from src.metrics.evaluator import EvalSettings, Evaluator, evaluator_for
from src.metrics.scene_eval import SceneEvaluator
from src.utils.config import ConfigError

log = logging.getLogger(__name__)
SCORE = "eval/score"


def weighted_score(metrics: dict[str, float], weights: dict[str, float], offset: float = 0.0) -> float:
    """offset + sum of weight * metric over `weights` (metric name -> weight): one number for a sweep or
    best.ckpt to rank when the goal is several metrics (a NaN metric gives NaN)."""
    missing = sorted(set(weights) - set(metrics))
    if missing:
        raise ConfigError(
            f"callbacks.evaluation.score names {missing}, which the evaluation did not compute; "
            f"have {sorted(metrics)}"
        )
    return offset + sum(float(w) * metrics[k] for k, w in weights.items())


class EvalCallback(EveryNGanSteps):
    """Evaluate every `every_n_steps` G updates and at the end; track `monitor` and write best.ckpt."""

    def __init__(
        self,
        *,
        cache_dir: str,
        ckpt_dir: str,
        every_n_steps: int = 500,
        num_samples: int = 1000,
        real_samples: int = 5000,
        heldout: bool = True,
        monitor: str = "eval/cfid",
        mode: str = "min",
        save_best: bool = True,
        classifier_steps: int = 600,
        classifier_min_accuracy: float = 0.95,
        classifier_on_low_accuracy: str = "error",
        seed: int = 0,
        score: dict[str, float] | None = None,
        score_offset: float = 0.0,
    ) -> None:
        super().__init__(every_n_steps)
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max' (got {mode!r})")
        self.cache_dir, self.ckpt_dir = cache_dir, Path(ckpt_dir)
        self.monitor, self.mode, self.save_best = monitor, mode, save_best
        self.score, self.score_offset = dict(score or {}), float(score_offset)
        if monitor == SCORE and not self.score:
            raise ConfigError(f"monitor={SCORE} needs callbacks.evaluation.score (metric -> weight)")
        self.classifier = ClassifierSettings(
            steps=classifier_steps,
            min_accuracy=classifier_min_accuracy,
            on_low_accuracy=classifier_on_low_accuracy,
        )
        self.settings = EvalSettings(
            num_samples=num_samples, real_samples=real_samples, heldout=heldout, inception=False, seed=seed
        )
        self.best: float | None = None
        self.best_step: int | None = None
        self._evaluator: Evaluator | SceneEvaluator | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        dm = trainer.datamodule
        # Scenes name their own evaluator (a layout reader): eval/scene/overall, eval/cfid on digit crops...
        if getattr(dm, "spec", None) is None and getattr(dm, "evaluator_target", None) is None:
            log.warning("evaluation needs a class-labelled data set (a reference classifier); disabled")
            self.enabled = False
            return
        if trainer.is_global_zero and self._evaluator is None:
            self._evaluator = evaluator_for(dm, self.settings, self.cache_dir, self.classifier)
            self._check_names()

    def _check_names(self) -> None:
        """Refuse before training a monitor or score that names class accuracy when a scene reader scores."""
        wrong = sorted(n for n in {*self.score, self.monitor} if "cond_acc" in n)
        if wrong and isinstance(self._evaluator, SceneEvaluator):
            raise ConfigError(
                f"callbacks.evaluation names class accuracies {wrong}, which a scene reader does not give; "
                "e.g. callbacks.evaluation.score='{eval/cfid: 1, eval/scene_heldout/overall: -100, "
                "eval/recall: -20}' (src.tune's default objective, eval/score, needs it on scenes)"
            )

    def _better(self, value: float) -> bool:
        if value != value:  # NaN never improves
            return False
        return self.best is None or (value < self.best if self.mode == "min" else value > self.best)

    def run(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        """Evaluate now (rank 0), log `eval/*`, update the best checkpoint (all ranks take part in saving)."""
        step = pl_module.gan_step
        metrics: dict[str, float] = {}
        if trainer.is_global_zero:
            raw = self._evaluator.evaluate(pl_module)
            metrics = {f"eval/{k}": float(v) for k, v in raw.items() if isinstance(v, int | float)}
            if self.score:
                metrics[SCORE] = weighted_score(metrics, self.score, self.score_offset)
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step)
            log.info("step %d: %s", step, {k: round(v, 4) for k, v in metrics.items()})
        metrics = trainer.strategy.broadcast(metrics, src=0)
        for k, v in metrics.items():
            trainer.callback_metrics[k] = torch.tensor(v)
        value = metrics.get(self.monitor)
        if value is None:
            raise ConfigError(f"monitor={self.monitor!r} is not an eval metric; have {sorted(metrics)}")
        if self._better(value):
            self.best, self.best_step = value, step
            if self.save_best:
                trainer.save_checkpoint(self.ckpt_dir / "best.ckpt", weights_only=False)
        if self.best is not None:  # a NaN first value (a scene model that draws no digit yet) sets no best
            trainer.callback_metrics[f"{self.monitor}_best"] = torch.tensor(self.best)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.best_step = state_dict.get("best"), state_dict.get("best_step")
