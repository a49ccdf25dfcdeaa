"""`Sampler`: the inference half of a trained TextGAN (EMA text encoder + EMA generator), nothing else."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn


class Sampler(nn.Module):
    """Prompts and noise -> images with the averaged (EMA) networks; always in eval mode."""

    def __init__(
        self,
        *,
        generator: nn.Module,
        text_encoder: nn.Module,
        run_config: dict[str, Any] | None = None,
        gan_step: int = -1,
    ) -> None:
        super().__init__()
        self.generator, self.text_encoder = generator, text_encoder
        # The training run's resolved config: default prompts, the model card, provenance.
        self.run_config = run_config or {}
        self.gan_step = gan_step
        # Inference only: inversion backpropagates to z, never into the weights.
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> Sampler:
        """Stay in eval mode: BatchNorm must use the stored (standing) statistics, never a batch's."""
        return super().train(False)

    @classmethod
    def from_module(cls, module: nn.Module) -> Sampler:
        """The EMA copies of a TextGAN (shared, not copied), with their BatchNorm statistics up to date."""
        module.refresh_ema_statistics()
        return cls(
            generator=module.ema.shadow["generator"],
            text_encoder=module.ema.shadow["text_encoder"],
            run_config=module.run_config,
            gan_step=getattr(module, "loaded_gan_step", module.gan_step),
        )

    @property
    def config(self) -> DictConfig:
        """The training run's config as a DictConfig (empty when unknown)."""
        return OmegaConf.create(self.run_config)

    @property
    def device(self) -> torch.device:
        """Where the weights are."""
        return next(self.generator.parameters()).device

    @property
    def z_dim(self) -> int:
        """Length of the noise vector z."""
        return int(self.generator.z_dim)

    @property
    def image_size(self) -> int:
        """Side of the square images, in pixels."""
        return int(self.generator.image_size)

    @property
    def channels(self) -> int:
        """Image channels (1 grayscale, 3 colour)."""
        return int(self.generator.channels)

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> Tensor:
        """N free-text prompts -> text embeddings (N, text_dim); word-level encoders: (N, 1 + L, text_dim)."""
        # A grid repeats each prompt many times; the frozen sentence model is the slow part, so each
        # distinct prompt is read once.
        position = {p: i for i, p in enumerate(dict.fromkeys(prompts))}
        index = torch.tensor([position[p] for p in prompts]) if len(position) < len(prompts) else None
        t = self.text_encoder(self.text_encoder.prepare(list(position)).to(self.device))
        return t if index is None else t[index.to(t.device)]

    def synthesize(self, z: Tensor, t: Tensor) -> Tensor:
        """z (N, z_dim), text embeddings (N, ...) -> images (N, C, H, W) in [-1, 1] (keeps autograd)."""
        return self.generator(z.to(self.device), t.to(self.device))

    @torch.no_grad()
    def forward(self, prompts: list[str], z: Tensor) -> Tensor:
        """Images for each (prompt, z) pair: N prompts, z (N, z_dim) -> (N, C, H, W) in [-1, 1]."""
        return self.synthesize(z, self.encode(prompts))


def as_sampler(model: nn.Module) -> Sampler:
    """A Sampler as is, or the Sampler of a TextGAN (for callers that still hold the LightningModule)."""
    return model if isinstance(model, Sampler) else Sampler.from_module(model)
