"""Adversarial objectives. `real`/`fake` are D's raw outputs (logits or critic scores), shape (N,)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bce_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """Non-saturating GAN D loss: -log sigmoid(real) - log(1 - sigmoid(fake)); (N,), (M,) -> ()."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def bce_g_loss(fake: Tensor) -> Tensor:
    """Non-saturating G loss: -log sigmoid(fake); (N,) -> ()."""
    return F.softplus(-fake).mean()


def hinge_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """Hinge D loss: relu(1 - real) + relu(1 + fake); (N,), (M,) -> ()."""
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def hinge_g_loss(fake: Tensor) -> Tensor:
    """Hinge G loss: -fake; (N,) -> ()."""
    return -fake.mean()


def wgan_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """Wasserstein critic loss: E[fake] - E[real]; (N,), (M,) -> ()."""
    return fake.mean() - real.mean()


def wgan_g_loss(fake: Tensor) -> Tensor:
    """Wasserstein G loss: -E[fake]; (N,) -> ()."""
    return -fake.mean()


def lsgan_d_loss(real: Tensor, fake: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Least-squares D loss: 0.5(real-b)^2 + 0.5(fake-a)^2; (N,), (M,) -> ()."""
    return 0.5 * (real - b).pow(2).mean() + 0.5 * (fake - a).pow(2).mean()


def lsgan_g_loss(fake: Tensor, c: float = 1.0) -> Tensor:
    """Least-squares G loss: 0.5(fake-c)^2; (N,) -> ()."""
    return 0.5 * (fake - c).pow(2).mean()


def all_finite(*tensors: Tensor) -> Tensor:
    """True (0-d bool tensor) when every element of every tensor is finite."""
    return torch.stack([torch.isfinite(t).all() for t in tensors]).all()
