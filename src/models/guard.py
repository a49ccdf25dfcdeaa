"""What a NaN/Inf loss does to a run, and how often the host looks (each look stalls a GPU stream)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from src.utils.distributed import all_reduce_sum

log = logging.getLogger(__name__)


class DivergenceError(RuntimeError):
    """A loss or weight became NaN/Inf."""


@dataclass
class NonFiniteGuard:
    """Policy for non-finite losses (conf/model/*.yaml `guard`).

    stop: raise, keeping the last good checkpoint. On a GPU the finiteness of each loss is accumulated on
    the device and read every `check_every` G steps, so the run stops within that many steps of a NaN
    without a host sync per optimizer step. skip / rollback: the step is not trained through (skipped,
    or weights and optimizers are reloaded from last.ckpt, at most `max_rollbacks` times); these read
    every loss. Under fp16 the GradScaler's own inf checks skip bad steps; `min_loss_scale` stops a run
    whose scale collapses (a real divergence).
    """

    mode: str = "stop"
    max_rollbacks: int = 3
    min_loss_scale: float = 1.0 / 1024
    check_every: int = 16

    def __post_init__(self) -> None:
        if self.mode not in ("stop", "skip", "rollback"):
            raise ValueError(f"guard mode must be stop, skip or rollback (got {self.mode!r})")
        if self.check_every < 1:
            raise ValueError(f"guard check_every must be >= 1 (got {self.check_every})")

    def per_loss(self, device: torch.device) -> bool:
        """Whether every loss is read on the host before its step (free on a CPU, needed to skip)."""
        return self.mode != "stop" or device.type == "cpu"

    def due(self, gan_step: int, device: torch.device) -> bool:
        """Whether the device-side flags are read after this G step."""
        return device.type == "cpu" or gan_step % self.check_every == 0


def check_flags(bad: Tensor | None, scaler: Any, guard: NonFiniteGuard, step: int) -> None:
    """Raise DivergenceError if the accumulated non-finite flag is set or the fp16 scale collapsed."""
    # Every rank must take the same decision, or the others wait in the next collective forever.
    if bad is not None and bool(all_reduce_sum(bad.float()) > 0):
        raise DivergenceError(f"non-finite loss within the {guard.check_every} G steps before step {step}")
    if scaler is not None and scaler.get_scale() < guard.min_loss_scale:
        raise DivergenceError(f"fp16 loss scale collapsed to {scaler.get_scale():g} at step {step}")


def rollback(module: Any, path: Path | None, reason: str, count: int, most: int) -> None:
    """Reload a LightningModule's weights and its optimizers' states from the checkpoint at `path`."""
    if path is None or not path.is_file():
        raise DivergenceError(reason + "; no checkpoint to roll back to")
    if count > most:
        raise DivergenceError(f"{reason}; gave up after {most} rollbacks")
    log.warning("%s: rolling back to %s (rollback %d)", reason, path, count)
    ckpt = torch.load(path, map_location=module.device, weights_only=True)
    module.load_state_dict(ckpt["state_dict"])
    for opt, state in zip(module.trainer.optimizers, ckpt["optimizer_states"]):
        opt.load_state_dict(state)
    # The G-step count rewinds with the weights: learning-rate schedules rewind with it.
    for config, state in zip(module.trainer.lr_scheduler_configs, ckpt.get("lr_schedulers", [])):
        config.scheduler.load_state_dict(state)
