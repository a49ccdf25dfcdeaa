"""The LightningModule: alternating D/G steps under manual optimization, EMA generator, logging.

Step convention: one `training_step` is one GAN step = `n_critic` D updates + 1 G update. Lightning
counts every optimizer step in `global_step`; PixelGAN's user-facing step (`gan_step`: logging,
`trainer.max_steps`, checkpoint names) counts G updates, as StudioGAN's `total_steps` does.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from src.losses.adversarial import all_finite
from src.losses.contrastive import info_nce
from src.losses.diversity import mode_seeking
from src.losses.objective import Objective, matching_aware_d_loss
from src.losses.regularizers import gradient_penalty, instance_noise_std, interpolate, r1_penalty
from src.models.components.ema import EMA

log = logging.getLogger(__name__)


class DivergenceError(RuntimeError):
    """A loss or weight became NaN/Inf."""


COUNTERS = ("nonfinite_skips", "amp_skipped_steps")


def _fill_missing_counters(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    """Checkpoints from before a counter existed load with that counter at 0."""
    for name in COUNTERS:
        state_dict.setdefault(prefix + name, torch.zeros((), dtype=torch.long))


class TextGAN(LightningModule):
    """Text-conditioned GAN: G(z, t), D(x, t) with matching-aware loss, shared text encoder."""

    def __init__(
        self,
        *,
        generator: nn.Module,
        discriminator: nn.Module,
        text_encoder: nn.Module,
        objective: Objective,
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        weight_decay: float = 0.0,
        ema_decay: float = 0.999,
        ema_warmup: bool = True,
        matching_aware: float | bool = 0.5,
        instance_noise: float = 0.0,
        instance_noise_steps: int = 0,
        grad_clip: float = 0.0,
        on_nonfinite: str = "stop",
        max_rollbacks: int = 3,
        compile: bool = False,
        channels_last: bool = False,
        min_loss_scale: float = 1.0 / 1024,
        contrastive_weight: float = 0.0,
        contrastive_temperature: float = 0.1,
        cond_aug_weight: float = 1.0,
        gan_int_weight: float = 0.0,
        mode_seeking_weight: float = 0.0,
        augment: nn.Module | None = None,
        ada: nn.Module | None = None,
        critic: nn.Module | None = None,
        schedule: Any = None,
        n_sample: int = 8,
        sample_seed: int = 1234,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.G, self.D, self.text_encoder, self.objective = generator, discriminator, text_encoder, objective
        self.lr_g, self.lr_d, self.betas, self.weight_decay = lr_g, lr_d, tuple(betas), weight_decay
        self.ema_decay, self.ema_warmup = ema_decay, ema_warmup
        # Weight of the mismatched-caption term among D's fake terms; true = 0.5 (GAN-INT-CLS), false = 0.
        self.matching_aware = (
            0.5 * matching_aware if isinstance(matching_aware, bool) else float(matching_aware)
        )
        self.instance_noise, self.instance_noise_steps = instance_noise, instance_noise_steps
        self.grad_clip, self.on_nonfinite = grad_clip, on_nonfinite
        self.max_rollbacks, self.rollbacks, self._rolled_back = max_rollbacks, 0, False
        self.compile_nets, self.channels_last, self.min_loss_scale = compile, channels_last, min_loss_scale
        self.contrastive_weight, self.contrastive_temperature = contrastive_weight, contrastive_temperature
        self.cond_aug_weight, self.gan_int_weight = cond_aug_weight, gan_int_weight
        self.mode_seeking_weight = mode_seeking_weight
        if contrastive_weight > 0 and getattr(discriminator, "contrastive_dim", 0) <= 0:
            raise ValueError("model.contrastive_weight > 0 needs model.discriminator.contrastive_dim > 0")
        # Tuner parts (conf/tuner): augmentation of every D input, ADA's controller of its p, lr schedule.
        self.augment, self.ada, self.schedule, self.critic = augment, ada, schedule, critic
        if ada is not None and augment is None:
            raise ValueError("ADA needs an augment module to control")
        self.ema = EMA(generator=generator, text_encoder=text_encoder)
        # Fixed noise for sample grids: a buffer, so it is checkpointed and a resumed run draws the same grid.
        z = torch.randn(n_sample, generator.z_dim, generator=torch.Generator().manual_seed(sample_seed))
        self.register_buffer("sample_z", z)
        self.register_buffer("caption_bank", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("nonfinite_skips", torch.zeros((), dtype=torch.long))
        # fp16: optimizer steps the GradScaler skipped because of inf/NaN gradients.
        self.register_buffer("amp_skipped_steps", torch.zeros((), dtype=torch.long))
        self.register_load_state_dict_pre_hook(_fill_missing_counters)
        # The resolved run config; stored in every checkpoint so generate/evaluate can rebuild the module.
        self.run_config: dict[str, Any] | None = None

    # --- steps ---------------------------------------------------------------------------------
    @property
    def optimizer_steps_per_gan_step(self) -> int:
        """Lightning's global_step advances by this much per GAN step (n_critic D + 1 G)."""
        return self.objective.n_critic + 1

    @property
    def gan_step(self) -> int:
        """Completed G updates."""
        return self.global_step // self.optimizer_steps_per_gan_step

    # --- text ----------------------------------------------------------------------------------
    def set_captions(self, captions: list[str]) -> None:
        """Prepare (tokenise/embed) the training caption bank once; batches index it by id."""
        self.caption_bank = self.text_encoder.prepare(captions).to(self.device)

    def encode_prompts(self, prompts: list[str], ema: bool = True) -> Tensor:
        """Free-text prompts -> text embeddings (N, text_dim) with the (EMA) encoder."""
        enc = self.ema.shadow["text_encoder"] if ema else self.text_encoder
        return enc(enc.prepare(prompts).to(self.device))

    @torch.no_grad()
    def generate(self, prompts: list[str], z: Tensor) -> Tensor:
        """EMA images for each (prompt, z) pair: N prompts, z (N, z_dim) -> (N, C, H, W) in [-1, 1]."""
        t = self.encode_prompts(prompts, ema=True)
        return self.ema.shadow["generator"](z.to(self.device), t)

    # --- Lightning hooks -----------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and self.caption_bank.numel() == 0:
            self.set_captions(dm.captions)
        if self.channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        if self.compile_nets:
            # In-place compile keeps parameter names, so checkpoints stay compatible either way.
            for net in (self.G, self.D, self.text_encoder):
                net.compile()

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        # The text encoder learns through D (matching-aware loss); G reads its output detached.
        fused = {"fused": True} if torch.cuda.is_available() and self.device.type == "cuda" else {}
        opt_g = torch.optim.Adam(
            self.G.parameters(), lr=self.lr_g, betas=self.betas, weight_decay=self.weight_decay, **fused
        )
        d_params = list(self.D.parameters()) + [p for p in self.text_encoder.parameters() if p.requires_grad]
        opt_d = torch.optim.Adam(
            d_params, lr=self.lr_d, betas=self.betas, weight_decay=self.weight_decay, **fused
        )
        if self.schedule is None:
            return [opt_g, opt_d]
        scheds = [torch.optim.lr_scheduler.LambdaLR(o, self.schedule) for o in (opt_g, opt_d)]
        return [opt_g, opt_d], scheds

    def _scaler_scale(self) -> float | None:
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        return float(scaler.get_scale()) if scaler is not None else None

    def _noisy(self, x: Tensor) -> Tensor:
        """What D sees of an image batch: augmented (DiffAugment/ADA) and with instance noise."""
        if self.augment is not None:
            x = self.augment(x)
        std = instance_noise_std(self.gan_step, self.instance_noise, self.instance_noise_steps)
        return x + std * torch.randn_like(x) if std > 0 else x

    def _step(self, opt: Any, loss: Tensor, name: str) -> bool:
        """Backward + (clip) + step; a non-finite loss is never trained through (stop, skip or roll back)."""
        opt.zero_grad(set_to_none=True)
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        # Under fp16 an inf loss is usually the loss scale overflowing (the gradient penalty's scaled
        # gradients): the GradScaler skips that step and halves the scale; min_loss_scale stops a real
        # divergence. Without a scaler a non-finite loss is never trained through.
        if scaler is None and not bool(torch.isfinite(loss)):
            self.nonfinite_skips += 1
            msg = f"non-finite {name} loss ({loss.item()}) at step {self.gan_step}"
            if self.on_nonfinite == "stop":
                raise DivergenceError(msg + "; the last good checkpoint is kept")
            if self.on_nonfinite == "rollback":
                self._rollback(msg)
            opt.step()  # all grads are None: a no-op that keeps Lightning's step count in line
            return False
        self.manual_backward(loss)
        if self.grad_clip > 0:
            if scaler is not None:
                scaler.unscale_(opt.optimizer)
            self.clip_gradients(opt, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
        before = scaler.get_scale() if scaler is not None else None
        opt.step()
        if scaler is not None and scaler.get_scale() < before:
            # The scaler found inf/NaN gradients, skipped this step and lowered the scale.
            self.amp_skipped_steps += 1
            if scaler.get_scale() < self.min_loss_scale:
                raise DivergenceError(
                    f"fp16 loss scale collapsed to {scaler.get_scale():g} at step {self.gan_step} ({name})"
                )
        return True

    def _rollback(self, reason: str) -> None:
        """Reload weights and optimizer states from the last checkpoint after a divergence."""
        from src.callbacks.checkpoint import GANCheckpoint

        paths = [cb.last_path for cb in self.trainer.callbacks if isinstance(cb, GANCheckpoint)]
        if not paths or not paths[0].is_file():
            raise DivergenceError(reason + "; no checkpoint to roll back to")
        self.rollbacks += 1
        self._rolled_back = True
        if self.rollbacks > self.max_rollbacks:
            raise DivergenceError(f"{reason}; gave up after {self.max_rollbacks} rollbacks")
        log.warning("%s: rolling back to %s (rollback %d)", reason, paths[0], self.rollbacks)
        ckpt = torch.load(paths[0], map_location=self.device, weights_only=True)
        self.load_state_dict(ckpt["state_dict"])
        for opt, state in zip(self.trainer.optimizers, ckpt["optimizer_states"]):
            opt.load_state_dict(state)

    def _noop(self, opt: Any) -> None:
        """An optimizer step with no gradients: changes nothing, keeps Lightning's step count in line."""
        opt.zero_grad(set_to_none=True)
        opt.step()

    def _d_step(
        self, opt_d: Any, x: Tensor, cids: Tensor, mids: Tensor, logs: dict
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One D update on reals x (B, C, H, W); returns (fakes, their noise, caption embeddings) for G."""
        t = self.text_encoder(self.caption_bank[cids])
        z = torch.randn(x.shape[0], self.G.z_dim, device=self.device, dtype=x.dtype)
        # Fakes are generated once per D step; the last one is reused for the G step.
        fake = self.G(z, t.detach())
        h_real = self.D.features(self._noisy(x))
        d_real = self.D.judge(h_real, t)
        if self.ada is not None:
            self.ada.accumulate(d_real)
        d_fake = self.D(self._noisy(fake.detach()), t)
        if self.critic is not None:
            self.critic.accumulate(d_real.detach(), d_fake.detach())
        # GAN-INT-CLS: a real image under a caption of another class also counts as fake (weight w).
        d_mis = (
            self.D.judge(h_real, self.text_encoder(self.caption_bank[mids])) if self.matching_aware else None
        )
        loss_d = matching_aware_d_loss(self.objective.d_loss, d_real, d_fake, d_mis, self.matching_aware)
        if self.contrastive_weight > 0:
            nce = info_nce(*self.D.contrastive_pair(h_real, t), self.contrastive_temperature)
            loss_d = loss_d + self.contrastive_weight * nce
            logs["train/nce_d"] = nce.detach()
        if self.objective.gp_weight > 0:
            x_hat = interpolate(x, fake.detach()).requires_grad_(True)
            gp = gradient_penalty(x_hat, self.D(x_hat, t.detach()), scale=self._scaler_scale())
            loss_d = loss_d + self.objective.gp_weight * gp
            logs["train/gp"] = gp.detach()
        if self.objective.r1_weight > 0:
            x_r = x.detach().requires_grad_(True)
            r1 = r1_penalty(x_r, self.D(x_r, t.detach()), scale=self._scaler_scale())
            loss_d = loss_d + 0.5 * self.objective.r1_weight * r1
            logs["train/r1"] = r1.detach()
        logs.update(
            {
                "train/d_loss": loss_d.detach(),
                "train/d_real": d_real.detach().mean(),
                "train/d_fake": d_fake.detach().mean(),
            }
        )
        self._step(opt_d, loss_d, "D")
        return fake, z, t.detach()

    def _g_step(self, opt_g: Any, fake: Tensor, z: Tensor, t: Tensor, logs: dict) -> None:
        """One G update from the last D step's fakes (their graph through G is still alive)."""
        self.toggle_optimizer(opt_g)
        h_gen = self.D.features(self._noisy(fake))
        loss_g = self.objective.g_loss(self.D.judge(h_gen, t))
        if self.contrastive_weight > 0:
            nce_g = info_nce(*self.D.contrastive_pair(h_gen, t), self.contrastive_temperature)
            loss_g = loss_g + self.contrastive_weight * nce_g
            logs["train/nce_g"] = nce_g.detach()
        if getattr(self.G, "cond_aug", False):
            loss_g = loss_g + self.cond_aug_weight * self.G.kl
            logs["train/cond_aug_kl"] = self.G.kl.detach()
        if self.gan_int_weight > 0:
            # GAN-INT (Reed et al. 2016): G also learns from midpoints of caption embeddings.
            t_int = 0.5 * (t + t.roll(1, dims=0))
            z_int = torch.randn(t_int.shape[0], self.G.z_dim, device=self.device, dtype=t_int.dtype)
            fake_int = self.G(z_int, t_int)
            loss_g = loss_g + self.gan_int_weight * self.objective.g_loss(
                self.D(self._noisy(fake_int), t_int)
            )
        if self.mode_seeking_weight > 0:
            # MSGAN: a second noise for the same captions should give other images. Half the batch is
            # redrawn; the first image of each pair is the D step's fake, so this costs one G pass on B/2.
            h = max(1, t.shape[0] // 2)
            z_b = torch.randn_like(z[:h])
            ms = mode_seeking(fake[:h], self.G(z_b, t[:h]), z[:h], z_b)
            loss_g = loss_g + self.mode_seeking_weight * ms
            logs["train/mode_seeking"] = ms.detach()
        logs["train/g_loss"] = loss_g.detach()
        if self._step(opt_g, loss_g, "G"):
            self._update_ema()
        self.untoggle_optimizer(opt_g)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        k = self.objective.n_critic
        images = batch["images"]
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        images, cids, mids = images.chunk(k), batch["caption_ids"].chunk(k), batch["mismatch_ids"].chunk(k)
        logs: dict[str, Tensor] = {}
        self._rolled_back = False
        # Adaptive n_critic trains the first `active` D slots; the rest step nothing (counts stay in line).
        active = self.critic.active(k) if self.critic is not None else k
        for i in range(k):
            # After a rollback the weights changed in place: the rest of this GAN step is skipped.
            if self._rolled_back or i >= active:
                self._noop(opt_d)
                continue
            fake, z, t = self._d_step(opt_d, images[i], cids[i], mids[i], logs)
        if self._rolled_back:
            self._noop(opt_g)
        else:
            self._g_step(opt_g, fake, z, t, logs)
        # The learning rates this step used (logged before the schedule moves them on).
        logs["train/lr_g"] = torch.tensor(opt_g.param_groups[0]["lr"])
        logs["train/lr_d"] = torch.tensor(opt_d.param_groups[0]["lr"])
        for sched in self.lr_schedulers() if self.schedule is not None else []:
            sched.step()
        n = images[0].shape[0]
        if self.critic is not None:
            self.critic.maybe_update(self.gan_step + 1, k)
            logs["tuner/n_critic"] = torch.tensor(float(active))
        if self.ada is not None:
            self.ada.maybe_update(self.augment, self.gan_step + 1, n * k)
            logs["tuner/ada_p"] = self.augment.p.detach()
            logs["tuner/ada_rt"] = self.ada.r_t.detach()
        logs.update(
            {
                "train/nonfinite_skips": self.nonfinite_skips.float(),
                "train/amp_skipped_steps": self.amp_skipped_steps.float(),
            }
        )
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=n)
        bar = {key.split("/")[1]: v for key, v in logs.items() if key in ("train/d_loss", "train/g_loss")}
        self.log_dict(bar, prog_bar=True, logger=False, batch_size=n)
        # "step" (G updates, not optimizer steps) is what progress bars and checkpoint names show.
        self.log("step", float(self.gan_step), on_step=True, on_epoch=False, logger=False, batch_size=n)

    def _update_ema(self) -> None:
        step = self.gan_step + 1
        decay = min(self.ema_decay, (1 + step) / (10 + step)) if self.ema_warmup else self.ema_decay
        self.ema.update(decay, generator=self.G, text_encoder=self.text_encoder)

    # --- checkpoint extras ---------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # RNG states make CPU resume bit-exact (noise draws continue where they stopped).
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["pixelgan_rng"] = rng
        checkpoint["pixelgan_gan_step"] = self.gan_step
        if self.run_config is not None:
            checkpoint["pixelgan_cfg"] = self.run_config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        rng = checkpoint.get("pixelgan_rng")
        if rng is not None:
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(rng["cuda"])

    def check_weights_finite(self) -> None:
        """Raise DivergenceError if any G/D/text-encoder weight is NaN/Inf."""
        params = [p for m in (self.G, self.D, self.text_encoder) for p in m.parameters()]
        if params and not bool(all_finite(*params)):
            raise DivergenceError(f"non-finite weights at step {self.gan_step}")
