"""The LightningModule: runs the loss phases under manual optimization, owns optimizer steps and EMA.

One `training_step` is one GAN step (up to `n_critic` D updates + 1 G update). `gan_step` counts G updates
in its own buffer (logging, `trainer.max_steps`, checkpoint names), as StudioGAN's `total_steps` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from src.losses.adversarial import all_finite
from src.losses.objective import Objective
from src.losses.phases import Nets, compile_phases, d_phase, g_phase, make_fakes, mode_seeking_pairs
from src.losses.regularizers import instance_noise_std
from src.models.components.ema import EMA
from src.models.guard import DivergenceError, NonFiniteGuard, check_flags, rollback
from src.tuner.bundle import Tuner
from src.utils.distributed import all_reduce_sum
from src.utils.rng import gather_rng_states, restore_rng_state

COUNTERS = ("nonfinite_skips", "amp_skipped_steps", "gan_steps")
# Batches of G's own samples that re-estimate the EMA generator's BatchNorm statistics.
STANDING_PASSES = 8


class TextGAN(LightningModule):
    """Text-conditioned GAN: G(z, t), D(x, t) with a shared text encoder trained through D."""

    def __init__(
        self,
        *,
        generator: nn.Module,
        discriminator: nn.Module,
        text_encoder: nn.Module,
        loss: Objective,
        tuner: Tuner | None = None,
        guard: NonFiniteGuard | None = None,
        ema_decay: float = 0.999,
        ema_warmup: bool = True,
        compile: bool = False,
        channels_last: bool = False,
        n_sample: int = 8,
        sample_seed: int = 1234,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.G, self.D, self.text_encoder, self.loss = generator, discriminator, text_encoder, loss
        if loss.terms.contrastive > 0 and getattr(discriminator, "contrastive_dim", 0) <= 0:
            raise ValueError("loss.terms.contrastive > 0 needs model.discriminator.contrastive_dim > 0")
        tuner = tuner or Tuner()
        self.augment, self.ada = tuner.augment, tuner.ada
        self.critic, self.schedule = tuner.critic, tuner.schedule
        self.guard = guard or NonFiniteGuard()
        self.ema_decay, self.ema_warmup = ema_decay, ema_warmup
        self.compile_nets, self.channels_last = compile, channels_last
        self.ema = EMA(generator=generator, text_encoder=text_encoder)
        # Fixed noise for sample grids: a buffer, so it is checkpointed and a resumed run draws the same grid.
        z = torch.randn(n_sample, generator.z_dim, generator=torch.Generator().manual_seed(sample_seed))
        self.register_buffer("sample_z", z)
        self.register_buffer("caption_bank", torch.zeros(0, dtype=torch.long), persistent=False)
        self.true_captions = 0
        for name in COUNTERS:
            self.register_buffer(name, torch.zeros((), dtype=torch.long))
        self.register_load_state_dict_post_hook(lambda m, _: m._sync_step())
        # Host copy of the gan_steps buffer (read without a device sync); G step of the EMA BN statistics.
        self._gan_step, self._ema_stats_step = 0, -1
        self._bad: Tensor | None = None  # device-side "a loss was non-finite" since the last check
        self.rollbacks, self._rolled_back = 0, False
        # Set by the checkpoint callback: where a rollback reloads from.
        self.rollback_path: Path | None = None
        # The run's G-step budget (-1: none); train() sets it from trainer.max_steps.
        self.max_gan_steps = -1
        # The resolved run config; stored in every checkpoint so generate/evaluate can rebuild the module.
        self.run_config: dict[str, Any] | None = None

    @property
    def gan_step(self) -> int:
        """Completed G updates."""
        return self._gan_step

    def reset_counters(self) -> None:
        """Start counting G steps (and skips) from 0, keeping the weights (fine-tuning)."""
        for name in COUNTERS:
            getattr(self, name).zero_()
        self._gan_step, self._ema_stats_step = 0, -1

    def _sync_step(self) -> None:
        self._gan_step = int(self.gan_steps)
        self._ema_stats_step = self._gan_step  # loaded EMA statistics belong to the loaded weights

    def set_captions(self, captions: list[str], true_count: int | None = None) -> None:
        """Prepare the caption bank once (batches index it by id); the first `true_count` are true captions
        (the rest hard negatives), which an encoder that learns from captions (`fit_captions`) learns from."""
        self.true_captions = true_count or len(captions)
        fit = getattr(self.text_encoder, "fit_captions", None)
        if fit is not None and fit(captions[: self.true_captions]):
            self.ema.shadow["text_encoder"].load_state_dict(self.text_encoder.state_dict())
        self.caption_bank = self.text_encoder.prepare(captions).to(self.device)

    def encode_prompts(self, prompts: list[str], ema: bool = True) -> Tensor:
        """Free-text prompts -> text embeddings (N, text_dim) with the (EMA) encoder."""
        enc = self.ema.shadow["text_encoder"] if ema else self.text_encoder
        return enc(enc.prepare(prompts).to(self.device))

    def refresh_ema_statistics(self) -> None:
        """Standing statistics: the EMA generator's BatchNorm statistics re-estimated from its own weights
        on training captions (once per G step, before it samples or is saved)."""
        if self._ema_stats_step != self.gan_step and self.caption_bank.numel() > 0:
            bank = self.caption_bank[: self.true_captions]
            self.ema.refresh_generator(bank, seed=self.gan_step, passes=STANDING_PASSES)
            self._ema_stats_step = self.gan_step

    @torch.no_grad()
    def generate(self, prompts: list[str], z: Tensor) -> Tensor:
        """EMA images for each (prompt, z) pair: N prompts, z (N, z_dim) -> (N, C, H, W) in [-1, 1]."""
        self.refresh_ema_statistics()
        t = self.encode_prompts(prompts, ema=True)
        return self.ema.shadow["generator"](z.to(self.device), t)

    # --- Lightning hooks -----------------------------------------------------------------------
    def on_train_start(self) -> None:
        # A resumed run that has reached its budget trains nothing (and rewrites no checkpoint).
        if 0 < self.max_gan_steps <= self.gan_step:
            self.trainer.should_stop = True

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and self.caption_bank.numel() == 0:
            self.set_captions(dm.captions, getattr(dm, "true_caption_count", None))
        if self.channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        if self.compile_nets:
            compile_phases(self.G, self.D, self.text_encoder)

    def configure_optimizers(self) -> list:
        # The text encoder learns through D (matching-aware and projection terms); G reads it detached.
        d_params = list(self.D.parameters()) + [p for p in self.text_encoder.parameters() if p.requires_grad]
        opts = self.loss.optimizers(self.G.parameters(), d_params, fused=self.device.type == "cuda")
        if self.schedule is None:
            return list(opts)
        return list(opts), [torch.optim.lr_scheduler.LambdaLR(o, self.schedule) for o in opts]

    def _scaler(self) -> Any:
        return getattr(self.trainer.precision_plugin, "scaler", None)

    def _see(self, x: Tensor) -> Tensor:
        """What D sees of an image batch: augmented (DiffAugment/ADA) and with instance noise."""
        if self.augment is not None:
            x = self.augment(x)
        terms = self.loss.terms
        std = instance_noise_std(self.gan_step, terms.instance_noise, terms.instance_noise_steps)
        return x + std * torch.randn_like(x) if std > 0 else x

    def _optimize(self, opt: Any, loss: Tensor, name: str) -> bool:
        """Backward + step, unless the loss is non-finite (then stop, skip or roll back per the guard)."""
        scaler = self._scaler()
        # Under fp16 the GradScaler's own inf checks skip bad steps; otherwise never train through NaN.
        if scaler is None and self.guard.per_loss(self.device):
            # Summed over ranks: under DDP every rank skips (or stops) together, or backward would hang.
            if bool(all_reduce_sum((~torch.isfinite(loss.detach())).float()) > 0):
                self._nonfinite(f"non-finite {name} loss ({loss.item()}) at step {self.gan_step}")
                return False
        elif scaler is None:
            bad = ~torch.isfinite(loss.detach())
            self._bad = bad if self._bad is None else self._bad | bad
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        before = scaler._scale.clone() if scaler is not None else None
        opt.step()  # clipping happens in on_before_optimizer_step, after Lightning's unscale
        if scaler is not None:
            # A lower scale after the step means the scaler found inf/NaN gradients and skipped it.
            self.amp_skipped_steps += (scaler._scale < before).long().squeeze()
        return True

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        clip = self.loss.grad_clip
        if clip <= 0:
            return
        scaler = self._scaler()
        if scaler is not None and getattr(optimizer, "_step_supports_amp_scaling", False):
            # Fused optimizers unscale in their step, so Lightning left the gradients scaled: unscale once.
            scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)

    def _nonfinite(self, msg: str) -> None:
        self.nonfinite_skips += 1
        if self.guard.mode == "stop":
            raise DivergenceError(msg + "; the last good checkpoint is kept")
        if self.guard.mode == "rollback":
            self._rollback(msg)

    def _rollback(self, reason: str) -> None:
        self.rollbacks += 1
        self._rolled_back = True
        rollback(self, self.rollback_path, reason, self.rollbacks, self.guard.max_rollbacks)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        obj, k = self.loss, self.loss.n_critic
        images = batch["images"]
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        images, cids, mids = images.chunk(k), batch["caption_ids"].chunk(k), batch["mismatch_ids"].chunk(k)
        nets, logs = Nets(self.G, self.D, self._see), {}
        self._rolled_back = False
        # Adaptive n_critic trains the first `active` D slots; the others are simply not run.
        active = self.critic.active(k) if self.critic is not None else k
        for i in range(active):
            t = self.text_encoder(self.caption_bank[cids[i]])
            t_mis = self.text_encoder(self.caption_bank[mids[i]]) if obj.uses_mismatch else None
            # The last D slot's fakes are reused by the G step (with their mode-seeking pairs).
            pairs = mode_seeking_pairs(obj, t.shape[0]) if i == active - 1 else 0
            fakes = make_fakes(self.G, t, pairs, t_mis)
            loss_d, d_logs, (d_real, d_fake) = d_phase(
                obj, nets, images[i], t, t_mis, fakes, scale=self._gp_scale()
            )
            logs.update(d_logs)
            if self.ada is not None:
                self.ada.accumulate(d_real)
            if self.critic is not None:
                self.critic.accumulate(d_real, d_fake)
            self._optimize(opt_d, loss_d, "D")
            if self._rolled_back:
                return  # the weights changed in place: the rest of this GAN step is void
        self.toggle_optimizer(opt_g)
        loss_g, g_logs = g_phase(obj, nets, fakes)
        logs.update(g_logs)
        stepped = self._optimize(opt_g, loss_g, "G")
        self.untoggle_optimizer(opt_g)
        if self._rolled_back:
            return
        if stepped:
            self._update_ema()
        self._end_step(opt_g, opt_d, logs, images[0].shape[0], active)

    def _gp_scale(self) -> Any:
        scaler = self._scaler()
        if scaler is None or not (self.loss.gp_weight > 0 or self.loss.r1_weight > 0):
            return None
        return scaler._scale if scaler._scale is not None else scaler.get_scale()

    def _end_step(self, opt_g: Any, opt_d: Any, logs: dict, n: int, active: int) -> None:
        self.gan_steps += 1
        self._gan_step += 1
        step, k = self._gan_step, self.loss.n_critic
        # The learning rates this step used (read before the schedule moves them on).
        lrs = opt_g.param_groups[0]["lr"], opt_d.param_groups[0]["lr"]
        for sched in self.lr_schedulers() if self.schedule is not None else []:
            sched.step()
        if self.critic is not None:
            self.critic.maybe_update(step, k)
            logs["tuner/n_critic"] = torch.tensor(float(active))
        if self.ada is not None:
            self.ada.maybe_update(self.augment, step, n * k)
            logs["tuner/ada_p"] = self.augment.p.detach()
            logs["tuner/ada_rt"] = self.ada.r_t.detach()
        if self.guard.due(step, self.device) or 0 < self.max_gan_steps <= step:
            self.check_finite()
        last = 0 < self.max_gan_steps <= step
        # Loggers write every log_every_n_steps; logging only then saves Lightning's per-call overhead.
        if last or step % self.trainer.log_every_n_steps == 0 or step == 1:
            logs["train/lr_g"], logs["train/lr_d"] = torch.tensor(lrs[0]), torch.tensor(lrs[1])
            logs["train/nonfinite_skips"] = self.nonfinite_skips.float()
            logs["train/amp_skipped_steps"] = self.amp_skipped_steps.float()
            self.log_dict(logs, on_step=True, on_epoch=False, batch_size=n)
            bar = {key.split("/")[1]: v for key, v in logs.items() if key in ("train/d_loss", "train/g_loss")}
            self.log_dict(bar, prog_bar=True, logger=False, batch_size=n)
        if last:
            self.trainer.should_stop = True

    def check_finite(self) -> None:
        """Read the device-side non-finite flag and the fp16 loss scale (one host sync); raise if bad."""
        check_flags(
            self._bad, self._scaler() if self._trainer is not None else None, self.guard, self.gan_step
        )

    def _update_ema(self) -> None:
        step = self.gan_step + 1
        decay = min(self.ema_decay, (1 + step) / (10 + step)) if self.ema_warmup else self.ema_decay
        self.ema.update(decay, generator=self.G, text_encoder=self.text_encoder)

    # --- checkpoint extras ---------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["pixelgan_rng"] = gather_rng_states()  # every rank's RNG: bit-exact resume per rank
        checkpoint["pixelgan_gan_step"] = self.gan_step
        if self.run_config is not None:
            checkpoint["pixelgan_cfg"] = self.run_config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        rng = checkpoint.get("pixelgan_rng")
        if rng is not None:
            restore_rng_state(rng if isinstance(rng, list) else [rng])

    def check_weights_finite(self) -> None:
        """Raise DivergenceError if any G/D/text-encoder weight is NaN/Inf."""
        params = [p for m in (self.G, self.D, self.text_encoder) for p in m.parameters()]
        if params and not bool(all_finite(*params)):
            raise DivergenceError(f"non-finite weights at step {self.gan_step}")
