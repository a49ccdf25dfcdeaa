"""Exponential moving average of modules' weights, used for sampling (Karras et al.; Yazici et al. 2019)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


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
        """shadow <- decay * shadow + (1 - decay) * live, for parameters only.

        Buffers are not copied: the live model's BatchNorm statistics belong to the live weights, not to
        the average; `standing_statistics` recomputes them for the averaged weights.
        """
        for name, live in modules.items():
            ema_p = list(self.shadow[name].parameters())
            live_p = [p.detach() for p in live.parameters()]
            torch._foreach_lerp_(ema_p, live_p, 1.0 - decay)

    @torch.no_grad()
    def standing_statistics(
        self, name: str, forward: Callable[[nn.Module, int], object], passes: int
    ) -> None:
        """Re-estimate the BatchNorm running statistics of shadow[name] from its own weights.

        `forward(net, i)` runs batch i through the copy in train mode; the statistics become the plain
        average over the passes (momentum None), as StudioGAN's standing statistics do.
        """
        net = self.shadow[name]
        norms = [m for m in net.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        net.train()
        try:
            for i in range(passes):
                forward(net, i)
        finally:
            net.eval()
            for m, mom in zip(norms, momenta):
                m.momentum = mom

    @torch.no_grad()
    def refresh_generator(self, bank: torch.Tensor, seed: int, passes: int, batch: int = 64) -> None:
        """Standing statistics of shadow["generator"] on random noise and captions of the prepared caption
        `bank`, read by shadow["text_encoder"]; a private RNG leaves training's random stream (and exact
        resume) untouched."""
        enc = self.shadow["text_encoder"]
        device = bank.device

        def forward(net: nn.Module, i: int) -> None:
            ids = torch.randint(len(bank), (batch,), device=device)
            net(torch.randn(batch, net.z_dim, device=device), enc(bank[ids]))

        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            self.standing_statistics("generator", forward, passes)
