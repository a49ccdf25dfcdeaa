"""The closing lines of a training run: what was written where, how many G steps, how long."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger

from src.callbacks.checkpoint import GANCheckpoint
from src.callbacks.progress import format_seconds
from src.callbacks.samples import SampleGrid


def logger_outputs(loggers: list[Logger]) -> list[str]:
    """One line per logger with files: its folder, plus `wandb sync ...` (offline) or the run URL.

    Call before a W&B run is finished: afterwards its settings can no longer be read.
    """
    lines = []
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            if lg._experiment is None:  # never started (e.g. training failed before the first log)
                continue
            run = lg.experiment
            if run.offline:
                where = Path(run.settings.sync_dir)
                lines.append(f"wandb        {where}  (upload: wandb sync {where})")
            else:
                lines.append(f"wandb        {run.url}")
        elif isinstance(lg, CSVLogger):
            lines.append(f"csv          {Path(lg.log_dir) / 'metrics.csv'}")
        elif isinstance(lg, TensorBoardLogger):
            lines.append(f"tensorboard  {lg.log_dir}  (view: tensorboard --logdir {lg.log_dir})")
    return lines


def closing_report(
    trainer: Trainer, gan_steps: int, seconds: float, output_dir: str, loggers: list[str]
) -> str:
    """`done: 1000 G steps in 12:03; run folder ...` followed by one indented line per output."""
    lines = [f"done: {gan_steps} G steps in {format_seconds(seconds)}; run folder {output_dir}"]
    for cb in trainer.callbacks:
        if isinstance(cb, GANCheckpoint) and cb.last_path.is_file():
            best = cb.dirpath / "best.ckpt"
            also = f", best {best}" if best.is_file() else ""
            lines.append(f"checkpoints  last {cb.last_path}{also}")
        elif isinstance(cb, SampleGrid) and cb.dirpath.is_dir():
            grids = sorted(cb.dirpath.glob("step_*.png"))
            latest = f" (latest {grids[-1].name})" if grids else ""
            lines.append(f"samples      {cb.dirpath}{latest}")
    lines += loggers
    return "\n  ".join(lines)
