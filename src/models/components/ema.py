"""Exponential moving average of modules' weights, used for sampling (Karras et al.; Yazici et al. 2019)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """Frozen averaged copies of the given modules; `shadow[name]` is always in eval mode."""

    def __init__(self, **modules: nn.Module) -> None:
        super().__init__()
        self.shadow = nn.ModuleDict({k: copy.deepcopy(m).requires_grad_(False) for k, m in modules.items()})
        self.shadow.eval()

    def train(self, mode: bool = True) -> EMA:
        """Stay in eval mode whatever the parent does: the copies are never trained."""
        return super().train(False)

    @torch.no_grad()
    def update(self, decay: float, **modules: nn.Module) -> None:
        """shadow <- decay * shadow + (1 - decay) * live, for parameters; buffers are copied."""
        for name, live in modules.items():
            target = self.shadow[name]
            ema_p = list(target.parameters())
            live_p = [p.detach() for p in live.parameters()]
            torch._foreach_lerp_(ema_p, live_p, 1.0 - decay)
            for b_ema, b in zip(target.buffers(), live.buffers()):
                b_ema.copy_(b)
