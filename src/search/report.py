"""The Lightning callback that hands a trial's progress to Ray Tune: the objective, the hyper-parameters in
force, and a checkpoint (the project's own resumable one, plus the schedule its weights followed)."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

from lightning.pytorch import LightningModule, Trainer
from ray import tune

from src.callbacks.periodic import EveryNGanSteps
from src.utils.config import ConfigError

# Names inside each reported checkpoint folder.
CKPT_FILE, SCHEDULE_FILE, STEP_FILE = "last.ckpt", "schedule.json", "step.json"
# Beside the schedule in the trial's run folder: one JSON line per report.
REPORTS_FILE = "reports.jsonl"


class TuneReport(EveryNGanSteps):
    """Every `every_n_steps` G updates (after the evaluation callback) and at the end: `tune.report` with
    `objective` (the value of `metric`), `gan_step`, the learning rates the optimizers really hold, and a
    checkpoint. The searched `params` are also logged to the run's own loggers as `tune/<key>`."""

    def __init__(
        self, *, metric: str, mode: str, every_n_steps: int, params: dict[str, float], schedule_path: str
    ) -> None:
        super().__init__(every_n_steps)
        self.metric, self.params, self.schedule_path = metric, dict(params), Path(schedule_path)
        # A NaN objective (a diverging trial) ranks last instead of breaking the scheduler's sort.
        self.worst = math.inf if mode == "min" else -math.inf
        # The metrics of the latest step this process trained: Lightning empties its callback metrics when
        # the epoch ends, before the final report.
        self._latest: dict | None = None

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        self._latest = dict(trainer.callback_metrics)
        super().on_train_batch_end(trainer, pl_module, *args)

    def run(self, trainer: Trainer, pl_module: LightningModule) -> None:
        step = pl_module.gan_step
        if self._latest is None:
            return  # resumed at the end of the budget: nothing trained, nothing new to report
        # What is logged now wins (the evaluation that runs when training ends comes after the last batch).
        latest = {**self._latest, **trainer.callback_metrics}
        value = latest.get(self.metric)
        if value is None:
            have = sorted(latest)
            raise ConfigError(f"optimized_metric={self.metric!r} was not logged by step {step}; have {have}")
        objective = float(value)
        metrics = {
            "objective": objective if objective == objective else self.worst,
            "gan_step": step,
            "lr_g_applied": trainer.optimizers[0].param_groups[0]["lr"],
            "lr_d_applied": trainer.optimizers[1].param_groups[0]["lr"],
        }
        metrics.update(
            {
                k.replace("/", "_"): float(v)
                for k, v in latest.items()
                if k.startswith("eval/") and v.numel() == 1
            }
        )
        # The trial's own record of what it reported under which hyper-parameters, across PBT restarts.
        with (self.schedule_path.parent / REPORTS_FILE).open("a") as f:
            f.write(json.dumps({**metrics, "params": self.params}) + "\n")
        for logger in trainer.loggers:
            logger.log_metrics({f"tune/{k}": float(v) for k, v in self.params.items()}, step=step)
        # The same guards as the checkpoint callback: no NaN weights, EMA statistics of the saved weights.
        pl_module.check_finite()
        pl_module.refresh_ema_statistics()
        with tempfile.TemporaryDirectory(prefix="pixelgan_report_") as folder:
            trainer.save_checkpoint(Path(folder) / CKPT_FILE, weights_only=False)
            shutil.copyfile(self.schedule_path, Path(folder) / SCHEDULE_FILE)
            (Path(folder) / STEP_FILE).write_text(json.dumps({"gan_step": step}))
            # report() copies the folder to the experiment's storage before it returns.
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
