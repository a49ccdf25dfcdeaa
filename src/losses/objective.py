"""The GAN objective a run trains with: which D/G losses, how many critic steps, which penalties."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

DLoss = Callable[[Tensor, Tensor], Tensor]
GLoss = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Objective:
    """Loss pair plus the schedule and penalties that belong with it (built from `conf/loss/*.yaml`)."""

    # D loss(real_logits (N,), fake_logits (M,)) -> (); fakes include mismatched-text reals.
    d_loss: DLoss
    # G loss(fake_logits (N,)) -> ().
    g_loss: GLoss
    # D (critic) updates per G update.
    n_critic: int = 1
    # Weight of the WGAN-GP gradient penalty; 0 disables it.
    gp_weight: float = 0.0
    # Weight of the R1 penalty on real images; 0 disables it.
    r1_weight: float = 0.0


def matching_aware_d_loss(
    d_loss: DLoss, d_real: Tensor, d_fake: Tensor, d_mis: Tensor | None, w: float
) -> Tensor:
    """GAN-INT-CLS D loss: real term + (1 - w) generated-fake term + w mismatched-caption term.

    d_real (N,), d_fake (M,), d_mis (N,) or None logits -> (). w = 0.5 with equal sizes is Reed et al.'s
    d_loss(real, cat(fake, mismatch)); w = 0 (or no d_mis) is the plain conditional loss.
    """
    loss = d_loss(d_real, d_fake)
    return loss if w <= 0 or d_mis is None else (1 - w) * loss + w * d_loss(d_real, d_mis)
