"""Adaptive n_critic: how many of a GAN step's D updates are applied, steered by how well D separates."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from src.utils.distributed import all_reduce_sum, world_size


def separation(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """D's accuracy, offset-free (valid for WGAN critics too): reals above the mean fake score and fakes
    below the mean real score, averaged. d_real (N,), d_fake (M,) -> scalar in [0, 1]."""
    real_ok = (d_real.float() > d_fake.float().mean()).float().mean()
    fake_ok = (d_fake.float() < d_real.float().mean()).float().mean()
    return 0.5 * (real_ok + fake_ok)


class AdaptiveCritic(nn.Module):
    """`loss.n_critic` D slots per GAN step; `n_active` of them train. Every `interval` G steps, the
    separation accuracy averaged over the interval moves n_active by one: down when D wins by more than
    `target + margin` (G falls behind), up when below `target - margin`; within [1, n_critic]. Under
    DDP the accuracy averages every rank's updates, so all ranks keep the same n_active."""

    def __init__(self, target: float = 0.75, margin: float = 0.1, interval: int = 10) -> None:
        super().__init__()
        if not (0.5 <= target - margin and target + margin <= 1.0):
            raise ValueError(
                f"adaptive critic: need 0.5 <= target - margin, target + margin <= 1 ({target}, {margin})"
            )
        self.target, self.margin, self.interval = target, margin, interval
        self.register_buffer("n_active", torch.zeros((), dtype=torch.long))  # 0 = not started: all slots
        self.register_buffer("acc_sum", torch.zeros(()))
        self.register_buffer("count", torch.zeros(()))
        self._cached: int | None = None
        self.register_load_state_dict_post_hook(self._forget)

    @staticmethod
    def _forget(module: Any, incompatible: Any) -> None:
        module._cached = None

    def active(self, n_critic: int) -> int:
        """D updates to apply this GAN step (reads the device value only after it changed)."""
        if self._cached is None:
            self._cached = int(self.n_active)
        return n_critic if self._cached == 0 else min(self._cached, n_critic)

    @torch.no_grad()
    def accumulate(self, d_real: Tensor, d_fake: Tensor) -> None:
        """Add one D update's logits on reals (N,) and fakes (M,); under DDP, every rank's (a collective)."""
        acc = separation(d_real, d_fake)
        if world_size() == 1:
            self.acc_sum += acc
            self.count += 1
            return
        # Summed at every update so the buffers (and rank 0's checkpoint) always hold all ranks' totals.
        total = all_reduce_sum(torch.stack([acc, torch.ones_like(acc)]))
        self.acc_sum += total[0]
        self.count += total[1]

    @torch.no_grad()
    def maybe_update(self, step: int, n_critic: int) -> bool:
        """At every `interval`-th G step, move n_active one step toward the target accuracy."""
        if step % self.interval != 0 or self.count == 0:
            return False
        acc = float(self.acc_sum / self.count)
        n = self.active(n_critic)
        if acc > self.target + self.margin:
            n -= 1
        elif acc < self.target - self.margin:
            n += 1
        self.n_active.fill_(max(1, min(n, n_critic)))
        self._cached = None
        self.acc_sum.zero_()
        self.count.zero_()
        return True

    @property
    def accuracy(self) -> Tensor:
        """Mean separation accuracy so far in this interval (0 when empty)."""
        return self.acc_sum / self.count.clamp_min(1)
