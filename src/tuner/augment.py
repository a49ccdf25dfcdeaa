"""Differentiable augmentations applied to every image D sees (real and fake alike).

DiffAugment (Zhao et al. 2020): colour, translation, cutout, always on. ADA (Karras et al. 2020): the
same ops applied per sample with probability p, where p follows an overfitting heuristic
r_t = E[sign(D(real))] toward a target (see `AdaController`). Every op keeps shape, keeps values in a
bounded range and is differentiable w.r.t. its input, so G gets gradients through it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from src.utils.distributed import all_reduce_sum, world_size


def _chosen(x: Tensor, p: float | Tensor) -> Tensor:
    """Per-sample mask (N, 1, 1, 1): which samples get this op, each with probability p."""
    if isinstance(p, float) and p >= 1.0:
        return torch.ones(x.shape[0], 1, 1, 1, device=x.device, dtype=torch.bool)
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device) < p


def colour(x: Tensor, p: float | Tensor = 1.0) -> Tensor:
    """Random brightness (+-0.5), saturation (x0..2) and contrast (x0.5..1.5); (N, C, H, W) in [-1, 1]."""
    n = x.shape[0]
    mask = _chosen(x, p)
    y = x + (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)
    if x.shape[1] > 1:
        mean = y.mean(dim=1, keepdim=True)
        y = (y - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = (y - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean
    return torch.where(mask, y, x)


def translation(x: Tensor, p: float | Tensor = 1.0, ratio: float = 0.125) -> Tensor:
    """Integer shifts up to ratio * size, zero (-1) padded, via one gather; (N, C, H, W) -> same."""
    n, _, h, w = x.shape
    mask = _chosen(x, p)
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    yy = (gy[None] + dy).clamp(-1, h)
    xx = (gx[None] + dx).clamp(-1, w)
    padded = nn.functional.pad(x, (1, 1, 1, 1), value=-1.0)
    idx = ((yy + 1) * (w + 2) + (xx + 1)).flatten(1)  # (N, H*W) into the padded image
    flat = padded.flatten(2)
    y = flat.gather(2, idx[:, None, :].expand(-1, x.shape[1], -1)).view_as(x)
    return torch.where(mask, y, x)


def cutout(x: Tensor, p: float | Tensor = 1.0, ratio: float = 0.5) -> Tensor:
    """Blank one random square of side ratio * size to -1 (black); (N, C, H, W) -> same."""
    n, _, h, w = x.shape
    mask = _chosen(x, p)
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    inside = ((gy[None] - cy).abs() <= ch // 2) & ((gx[None] - cx).abs() <= cw // 2)
    y = torch.where(inside[:, None], torch.full_like(x, -1.0), x)
    return torch.where(mask, y, x)


OPS = {"colour": colour, "translation": translation, "cutout": cutout}


class Augment(nn.Module):
    """Applies `ops` in order, each to every sample with probability `p` (a buffer: checkpointed)."""

    def __init__(
        self, ops: list[str] | tuple[str, ...] = ("colour", "translation", "cutout"), p: float = 1.0
    ) -> None:
        super().__init__()
        unknown = [o for o in ops if o not in OPS]
        if unknown:
            raise ValueError(f"unknown augmentation(s) {unknown}; choose from {sorted(OPS)}")
        self.ops = list(ops)
        self.register_buffer("p", torch.tensor(float(p)))
        # Host copy of p, so each call does not read a GPU buffer; refreshed when p changes or loads.
        self._p: float | None = None
        self.register_load_state_dict_post_hook(lambda m, _: m.forget_p())

    def forget_p(self) -> None:
        """Re-read p from the buffer at the next call (after ADA moved it or a checkpoint loaded)."""
        self._p = None

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) in [-1, 1] -> augmented (N, C, H, W); identity when p == 0."""
        if self._p is None:
            self._p = float(self.p)
        p = self._p
        if p <= 0.0:
            return x
        for op in self.ops:
            x = OPS[op](x, p)
        return x


class AdaController(nn.Module):
    """ADA's p update: every `interval` G steps, p += sign(r_t - target) * images / (speed_kimg * 1000),
    with r_t = E[sign(D(real))] over the interval (stylegan2-ada's training_loop).

    Under DDP, r_t and images count every rank's reals, so all ranks move p identically.
    """

    def __init__(self, target: float = 0.6, interval: int = 4, speed_kimg: float = 100.0) -> None:
        super().__init__()
        self.target, self.interval, self.speed_kimg = target, interval, speed_kimg
        self.register_buffer("sign_sum", torch.zeros(()))
        self.register_buffer("count", torch.zeros(()))
        self.register_buffer("r_t", torch.zeros(()))

    @torch.no_grad()
    def accumulate(self, d_real: Tensor) -> None:
        """Add a batch of D(real) logits (N,); under DDP, every rank's batch (a collective)."""
        signs = torch.sign(d_real.float()).sum()
        if world_size() == 1:
            self.sign_sum += signs
            self.count += d_real.numel()
            return
        # Summed at every batch, not once per interval: the buffers then hold the totals of all ranks at
        # all times, so the checkpoint rank 0 writes mid-interval resumes every rank correctly.
        total = all_reduce_sum(torch.stack([signs, torch.full_like(signs, d_real.numel())]))
        self.sign_sum += total[0]
        self.count += total[1]

    @torch.no_grad()
    def maybe_update(self, augment: Augment, step: int, batch_size: int) -> bool:
        """Every `interval`-th step, move augment.p toward r_t = target (batch_size: this rank's reals per
        step); True if updated."""
        if step % self.interval != 0 or self.count == 0:
            return False
        self.r_t.copy_(self.sign_sum / self.count)
        # As in stylegan2-ada, speed counts the images of all ranks: batch_size is this rank's.
        images = batch_size * world_size() * self.interval
        adjust = torch.sign(self.r_t - self.target) * images / (self.speed_kimg * 1000)
        augment.p.copy_((augment.p + adjust).clamp(0.0, 1.0))
        augment.forget_p()
        self.sign_sum.zero_()
        self.count.zero_()
        return True
