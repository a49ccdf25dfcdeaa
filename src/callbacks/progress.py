"""What the terminal shows while training: one bar counting G steps, and a short model summary."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelSummary, ProgressBar, Timer
from lightning.pytorch.utilities.model_summary.model_summary import get_human_readable_count
from torch import nn
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

log = logging.getLogger(__name__)


def step_budget(trainer: Trainer, pl_module: LightningModule, n_critic: int = 1) -> int:
    """The run's G-step budget; -1 when only time (or nothing) limits it."""
    # Fallback for modules without `max_gan_steps`: Lightning counts n_critic D + 1 G step per GAN step.
    fallback = trainer.max_steps // (n_critic + 1) if trainer.max_steps and trainer.max_steps > 0 else -1
    return int(getattr(pl_module, "max_gan_steps", fallback))


def _columns() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        return 0


def format_seconds(seconds: float) -> str:
    """12345.6 -> '3:25:45', 75 -> '01:15' (what tqdm shows for elapsed time)."""
    return tqdm.format_interval(max(0.0, seconds))


def loss_postfix(metrics: dict[str, Any]) -> str:
    """'d_loss=1.140 g_loss=2.800' from the progress-bar metrics the module logs."""
    return " ".join(f"{k}={float(metrics[k]):.3f}" for k in ("d_loss", "g_loss") if k in metrics)


class GANProgressBar(ProgressBar):
    """`train: step 250/1000 |###   | 01:10<03:30, 3.5step/s d_loss=1.14 g_loss=2.80` (one bar per run)."""

    def __init__(self, n_critic: int = 1) -> None:
        super().__init__()
        self.n_critic = n_critic
        self._enabled = True
        self.bar: tqdm | None = None
        self._redirect = contextlib.ExitStack()

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _timer(self, trainer: Trainer) -> Timer | None:
        return next((c for c in trainer.callbacks if isinstance(c, Timer)), None)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._close()
        if not (self._enabled and trainer.is_global_zero):
            return
        total = step_budget(trainer, pl_module, self.n_critic)
        if total > 0:
            bar_format = "{desc}: step {n_fmt}/{total_fmt} |{bar}| {elapsed}<{remaining}, {rate_fmt}{postfix}"
        else:
            bar_format = "{desc}: step {n_fmt} [{elapsed}, {rate_fmt}{postfix}]"
        tty = sys.stderr.isatty()
        # A terminal that reports a 0x0 size (some containers, `script`) makes tqdm print nothing, unless
        # given a size: $COLUMNS/$LINES or 80x24.
        sized = tty and _columns() > 0
        fallback = shutil.get_terminal_size()
        self.bar = tqdm(
            total=total if total > 0 else None,
            initial=pl_module.gan_step,  # a resumed run starts where it stopped
            desc="train",
            unit="step",
            dynamic_ncols=sized,
            ncols=None if sized else fallback.columns,
            nrows=None if sized else fallback.lines,
            # In a log file (SLURM, `| tee`) every refresh is a line: once a minute is enough there.
            mininterval=0.5 if tty else 60.0,
            bar_format=bar_format,
            file=sys.stderr,
        )
        # Log lines (evaluation results, warnings) print above the bar instead of splitting it.
        # Lightning's logger has its own console handler when it was imported before logging was set up.
        loggers = [logging.root, logging.getLogger("lightning.pytorch")]
        self._redirect.enter_context(logging_redirect_tqdm(loggers=loggers))

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if self.bar is None:
            return
        postfix = loss_postfix(trainer.progress_bar_metrics)
        timer = self._timer(trainer)
        left = timer.time_remaining() if timer is not None else None
        if left is not None:
            postfix += f" time left {format_seconds(left)}"
        self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.update(pl_module.gan_step - self.bar.n)

    def _close(self) -> None:
        self._redirect.close()
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        # The error message then starts on its own line, not after the bar.
        self._close()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._close()


def _human(n: int) -> str:
    return get_human_readable_count(n).strip()  # "12  " -> "12", "1.8 M" unchanged


def _count(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class CompactModelSummary(ModelSummary):
    """One line: each top-level module with its parameter count, and the trainable/frozen totals.

    Replaces Lightning's table (a ModelSummary, so the trainer adds no other), whose per-mode and FLOPs
    columns say little here and whose size estimate warns under bf16-mixed precision.
    """

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        parts = [f"{name} ({type(m).__name__}) {_human(_count(m))}" for name, m in pl_module.named_children()]
        trainable = _count(pl_module, trainable_only=True)
        log.info(
            "model: %s; %s trainable, %s frozen (EMA copies, frozen encoders)",
            ", ".join(parts),
            _human(trainable),
            _human(_count(pl_module) - trainable),
        )
