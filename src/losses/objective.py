"""The GAN objective a run trains with (built from `conf/loss/*.yaml`): the adversarial loss pair, its
penalties, the weights of every extra term, and the optimizer settings tuned for it."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor

DLoss = Callable[[Tensor, Tensor], Tensor]
GLoss = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Terms:
    """Weights of the terms added to the adversarial losses (conf/loss/terms/*.yaml); 0 disables one."""

    # GAN-INT-CLS: a real image under another caption counts as fake for D, with this weight among D's
    # fake terms (0.5 = Reed et al. 2016).
    matching_aware: float = 0.0
    # MSGAN (Mao et al. 2019): two noises, one caption, pushed to different images (G).
    mode_seeking: float = 0.0
    # DSGAN's bound (Yang et al. 2019) on the mode-seeking ratio: no push once two noises of one caption
    # differ this much in mean |pixel| per mean |noise|; 0 leaves it unbounded (MSGAN's).
    mode_seeking_bound: float = 0.0
    # InfoNCE between D's image features and the text, for D (reals) and G (fakes); D's heads
    # (model.discriminator.contrastive_dim, 128 by default when this is > 0) map both into one space.
    contrastive: float = 0.0
    contrastive_temperature: float = 0.1
    # The batch's mismatched captions (hard negatives among them) also count as wrong texts for every
    # image in the contrastive term, for D and G (NegCLIP): D must read which digit wears which colour.
    contrastive_negatives: bool = False
    # GAN-INT (Reed et al. 2016): G also learns from midpoints of caption embeddings.
    gan_int: float = 0.0
    # KL of the conditioning augmentation (generators with cond_aug=true).
    cond_aug_kl: float = 1.0
    # Gaussian noise on D's inputs, std annealed linearly to 0 over instance_noise_steps G updates.
    instance_noise: float = 0.0
    instance_noise_steps: int = 0


def _adam() -> Callable[..., torch.optim.Optimizer]:
    return functools.partial(torch.optim.Adam, betas=(0.5, 0.999))


@dataclass(frozen=True)
class Objective:
    """Everything about what a GAN step optimises and how; the module only runs the steps."""

    # D loss(real_logits (N,), fake_logits (M,)) -> ().
    d_loss: DLoss
    # G loss(fake_logits (N,)) -> ().
    g_loss: GLoss
    # D (critic) updates per G update.
    n_critic: int = 1
    # Weight of the WGAN-GP gradient penalty; 0 disables it.
    gp_weight: float = 0.0
    # Weight of the R1 penalty on real images (0.5 * gamma in Mescheder et al.'s notation is applied).
    r1_weight: float = 0.0
    # Weight of the drift penalty E[D(real)^2] (ProGAN's epsilon_drift): anchors a Wasserstein critic,
    # whose loss ignores a constant shift, so its outputs do not wander off (and lose bf16 precision).
    drift_weight: float = 0.0
    terms: Terms = field(default_factory=Terms)
    # Learning rates of G and of D (+ text encoder).
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    # Optimizer factory: params, lr -> optimizer (a `_partial_` in the config).
    optimizer: Callable[..., torch.optim.Optimizer] = field(default_factory=_adam)
    # Max gradient norm for G and D; 0 disables clipping.
    grad_clip: float = 0.0

    @property
    def uses_mismatch(self) -> bool:
        """Whether a step needs the mismatched captions' text (matching-aware term, contrastive negatives)."""
        t = self.terms
        return t.matching_aware > 0 or (t.contrastive > 0 and t.contrastive_negatives)

    def optimizers(
        self, g_params: Iterable, d_params: Iterable, fused: bool = False
    ) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """G's and D's optimizers; `fused` uses the fused kernels where the optimizer has them (CUDA)."""
        make = self.optimizer
        func = getattr(make, "func", make)
        if (
            fused
            and "fused" in inspect.signature(func).parameters
            and "fused" not in getattr(make, "keywords", {})
        ):
            make = functools.partial(make, fused=True)
        return make(g_params, lr=self.lr_g), make(d_params, lr=self.lr_d)


def matching_aware_d_loss(
    d_loss: DLoss, d_real: Tensor, d_fake: Tensor, d_mis: Tensor | None, w: float
) -> Tensor:
    """GAN-INT-CLS D loss: real term + (1 - w) generated-fake term + w mismatched-caption term.

    d_real (N,), d_fake (M,), d_mis (N,) or None logits -> (). w = 0.5 with equal sizes is Reed et al.'s
    d_loss(real, cat(fake, mismatch)); w = 0 (or no d_mis) is the plain conditional loss.
    """
    loss = d_loss(d_real, d_fake)
    return loss if w <= 0 or d_mis is None else (1 - w) * loss + w * d_loss(d_real, d_mis)
