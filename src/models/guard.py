"""What a NaN/Inf loss does to a run, and how often the host looks (each look stalls a GPU stream)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
