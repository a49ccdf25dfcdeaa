"""Learning-rate schedules for G and D, stepped once per G update (a GAN step)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LRSchedule:
    """Multiplier of the base lr: linear warm-up, then constant, linear or cosine decay to `final`."""

    # G updates of linear warm-up from 0 to 1 (0: none).
    warmup_steps: int = 0
    # "constant", "linear" or "cosine" decay after warm-up.
    decay: str = "constant"
    # G update at which the decay reaches `final` (<= 0: no decay).
    total_steps: int = 0
    # Multiplier at the end of the decay.
    final: float = 0.0

    def __post_init__(self) -> None:
        if self.decay not in ("constant", "linear", "cosine"):
            raise ValueError(f"schedule decay must be constant, linear or cosine (got {self.decay!r})")

    def __call__(self, step: int) -> float:
        """Multiplier for the lr used at G update `step` (0-based)."""
        factor = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        if self.decay == "constant" or self.total_steps <= self.warmup_steps:
            return factor
        t = min(1.0, max(0.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)))
        shape = 1.0 - t if self.decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * t))
        return factor * (self.final + (1.0 - self.final) * shape)
