"""The in-training tuners a run uses (conf/tuner/*.yaml), handed to the module as one object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn


@dataclass
class Tuner:
    """Augmentation of every image D sees, ADA's controller of its p, adaptive n_critic, lr schedule."""

    augment: nn.Module | None = None
    ada: nn.Module | None = None
    critic: nn.Module | None = None
    schedule: Any = None

    def __post_init__(self) -> None:
        if self.ada is not None and self.augment is None:
            raise ValueError("ADA needs an augment module to control")
