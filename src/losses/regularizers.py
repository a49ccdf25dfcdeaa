"""Regularizers for D: pure functions returning a scalar tensor to add to the loss."""

from __future__ import annotations

import torch
from torch import Tensor


def gradient_penalty(inputs: Tensor, outputs: Tensor, scale: float | Tensor | None = None) -> Tensor:
    """WGAN-GP penalty E[(||dD/dx||_2 - 1)^2]; inputs (N, ...) requiring grad, outputs (N,) -> ().

    Under fp16 autocast `scale` is the GradScaler's current scale: the outputs are scaled before
    `autograd.grad` so small gradients do not underflow, and the gradients are unscaled before the
    norm (PyTorch's AMP gradient-penalty recipe). An overflow yields inf, which the scaler then skips.
    """
    grads = _input_grad(inputs, outputs, scale)
    return (grads.flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()


def _input_grad(inputs: Tensor, outputs: Tensor, scale: float | Tensor | None) -> Tensor:
    """dD/dx (N, ...) in fp32, for outputs (N,) that may be fp16 under autocast.

    The scaled sum is taken in fp32 (65536 * an fp16 output overflows fp16), and scaled by scale / N: the
    gradient each fp16 output receives is then what a batch-mean loss gives it in the ordinary backward.
    """
    if scale is None:
        (grads,) = torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
        return grads.float()
    s = scale / outputs.shape[0]
    (grads,) = torch.autograd.grad((outputs.float() * s).sum(), inputs, create_graph=True)
    return grads.float() / s


def r1_penalty(real_inputs: Tensor, real_outputs: Tensor, scale: float | Tensor | None = None) -> Tensor:
    """R1 penalty E[||dD(x_real)/dx||^2] (Mescheder et al. 2018); (N, ...), (N,) -> ()."""
    grads = _input_grad(real_inputs, real_outputs, scale)
    return grads.flatten(1).pow(2).sum(1).mean()


def interpolate(real: Tensor, fake: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Random points on lines between real and fake samples; (N, C, H, W) x2 -> (N, C, H, W)."""
    eps = torch.rand(
        real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype, generator=generator
    )
    return eps * real + (1.0 - eps) * fake


def instance_noise_std(step: int, start_std: float, anneal_steps: int) -> float:
    """Std of Gaussian instance noise at G step `step`, annealed linearly from start_std to 0."""
    if start_std <= 0 or anneal_steps <= 0:
        return 0.0
    return start_std * max(0.0, 1.0 - step / anneal_steps)
