"""The GAN step as loss phases: every term of D's and G's objectives is computed and weighted here.

As stylegan2-ada's `training/loss.py` separates Dmain/Dreg/Gmain, but pure: each phase returns
`(loss, logs)` and never calls `.backward()`; the LightningModule (and `src.bench`'s bare loop) own the
backward passes, optimizer steps, mixed precision and DDP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from src.losses.contrastive import info_nce
from src.losses.diversity import mode_seeking
from src.losses.objective import Objective, Terms, matching_aware_d_loss
from src.losses.regularizers import gradient_penalty, interpolate, r1_penalty

Logs = dict[str, Tensor]


@dataclass
class Nets:
    """The networks a phase reads, and what D sees of an image batch (augmentation, instance noise)."""

    G: nn.Module
    D: nn.Module
    see: Callable[[Tensor], Tensor] = lambda x: x


@dataclass
class Fakes:
    """One G pass, shared by a D phase (detached) and the G phase (with its graph through G)."""

    images: Tensor  # (B, C, H, W) in [-1, 1]
    z: Tensor  # (B, z_dim)
    t: Tensor  # (B, text_dim) text embeddings, detached: G reads the text, only D trains the encoder
    kl: Tensor | None  # conditioning-augmentation KL, () or None
    pair: Tensor | None = None  # (h, C, H, W): the first h captions again, with other noise
    z_pair: Tensor | None = None  # (h, z_dim)
    t_mis: Tensor | None = None  # (B, text_dim) mismatched captions, detached: G's contrastive negatives


def make_fakes(G: nn.Module, t: Tensor, pairs: int = 0, t_mis: Tensor | None = None) -> Fakes:
    """G's images for text t (B, text_dim); with pairs = h > 0 the first h captions also get a second
    noise in the same pass, so BatchNorm's batch statistics are shared by both images of a pair.
    t_mis (B, text_dim), the batch's mismatched captions, rides along for G's contrastive negatives."""
    t = t.detach()
    t_mis = None if t_mis is None else t_mis.detach()
    b = t.shape[0]
    h = min(pairs, b)
    code, kl = G.condition(t)
    z = torch.randn(b + h, G.z_dim, device=t.device)
    images = G.synthesize(z, torch.cat([code, code[:h]]) if h else code)
    if not h:
        return Fakes(images, z, t, kl, t_mis=t_mis)
    return Fakes(images[:b], z[:b], t, kl, pair=images[b:], z_pair=z[b:], t_mis=t_mis)


def _nce(D: nn.Module, h: Tensor, t: Tensor, t_mis: Tensor | None, terms: Terms) -> Tensor:
    """The contrastive term of features h (N, F) and text t (N, text_dim), with t_mis as extra wrong texts
    when `contrastive_negatives` is on -> ()."""
    img, txt = D.contrastive_pair(h, t)
    neg = D.contrastive_text(t_mis) if terms.contrastive_negatives and t_mis is not None else None
    return info_nce(img, txt, terms.contrastive_temperature, negatives=neg)


def d_phase(
    obj: Objective,
    nets: Nets,
    x: Tensor,
    t: Tensor,
    t_mis: Tensor | None,
    fakes: Fakes,
    scale: float | Tensor | None = None,
) -> tuple[Tensor, Logs, tuple[Tensor, Tensor]]:
    """D's loss on reals x (B, C, H, W) with their text t (B, text_dim), mismatched text t_mis, and fakes.

    Returns (loss (), logs, (D's real logits (B,), fake logits (B,)) detached for tuner statistics).
    Penalties are taken on what D's loss sees: the augmented images. `scale` is fp16's loss scale.
    """
    D, terms = nets.D, obj.terms
    x_seen = nets.see(x)
    fake_seen = nets.see(fakes.images.detach())
    if obj.r1_weight > 0:
        # R1 differentiates the same real pass the loss uses (stylegan2-ada's Dr1 on real_img_tmp).
        x_seen = x_seen.detach().requires_grad_(True)
    h_real = D.features(x_seen)
    d_real = D.judge(h_real, t)
    d_fake = D(fake_seen, t)
    d_mis = D.judge(h_real, t_mis) if t_mis is not None and terms.matching_aware > 0 else None
    loss = matching_aware_d_loss(obj.d_loss, d_real, d_fake, d_mis, terms.matching_aware)
    logs: Logs = {"train/d_real": d_real.detach().mean(), "train/d_fake": d_fake.detach().mean()}
    if terms.contrastive > 0:
        nce = _nce(D, h_real, t, t_mis, terms)
        loss = loss + terms.contrastive * nce
        logs["train/nce_d"] = nce.detach()
    if obj.gp_weight > 0:
        x_hat = interpolate(x_seen.detach(), fake_seen.detach()).requires_grad_(True)
        # The critic is D(x, encoder(caption)): the text is not detached, so the penalty also bounds the
        # text encoder. Detached, a Wasserstein loss (linear, never saturating) grows the embeddings
        # without limit along one shared direction until every caption looks alike to D and to G.
        gp = gradient_penalty(x_hat, D(x_hat, t), scale=scale)
        loss = loss + obj.gp_weight * gp
        logs["train/gp"] = gp.detach()
    if obj.r1_weight > 0:
        # The text is detached: R1 shapes D around the reals, not the text encoder (it pairs with
        # saturating losses, whose D gains nothing from growing the embeddings without limit).
        r1 = r1_penalty(x_seen, D.judge(h_real, t.detach()), scale=scale)
        loss = loss + 0.5 * obj.r1_weight * r1
        logs["train/r1"] = r1.detach()
    if obj.drift_weight > 0:
        drift = d_real.float().pow(2).mean()
        loss = loss + obj.drift_weight * drift
        logs["train/drift"] = drift.detach()
    logs["train/d_loss"] = loss.detach()
    return loss, logs, (d_real.detach(), d_fake.detach())


def g_phase(obj: Objective, nets: Nets, fakes: Fakes) -> tuple[Tensor, Logs]:
    """G's loss on the fakes of the last D phase (their graph through G is alive) -> (loss (), logs)."""
    G, D, terms, t = nets.G, nets.D, obj.terms, fakes.t
    h_gen = D.features(nets.see(fakes.images))
    loss = obj.g_loss(D.judge(h_gen, t))
    logs: Logs = {}
    if terms.contrastive > 0:
        nce = _nce(D, h_gen, t, fakes.t_mis, terms)
        loss = loss + terms.contrastive * nce
        logs["train/nce_g"] = nce.detach()
    if fakes.kl is not None:
        loss = loss + terms.cond_aug_kl * fakes.kl
        logs["train/cond_aug_kl"] = fakes.kl.detach()
    if terms.gan_int > 0:
        # Midpoints of caption embeddings: G learns to follow text between the training captions.
        t_int = 0.5 * (t + t.roll(1, dims=0))
        fake_int = G(torch.randn(t_int.shape[0], G.z_dim, device=t.device), t_int)
        loss = loss + terms.gan_int * obj.g_loss(D(nets.see(fake_int), t_int))
    if terms.mode_seeking > 0 and fakes.pair is not None:
        h = fakes.pair.shape[0]
        ms = mode_seeking(
            fakes.images[:h], fakes.pair, fakes.z[:h], fakes.z_pair, bound=terms.mode_seeking_bound
        )
        loss = loss + terms.mode_seeking * ms
        logs["train/mode_seeking"] = ms.detach()
    logs["train/g_loss"] = loss.detach()
    return loss, logs


def mode_seeking_pairs(obj: Objective, batch: int) -> int:
    """How many captions of a G step's batch get a second noise (half the batch when the term is on)."""
    return max(1, batch // 2) if obj.terms.mode_seeking > 0 else 0


def compile_phases(G: nn.Module, D: nn.Module, text_encoder: nn.Module) -> None:
    """torch.compile the methods the phases call (not `forward`), in place: parameter names, and so
    checkpoints, stay the same compiled or not."""
    for net, names in ((G, ("condition", "synthesize")), (D, ("features", "judge"))):
        for name in names:
            setattr(net, name, torch.compile(getattr(net, name)))
    text_encoder.compile()
