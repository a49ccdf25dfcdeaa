"""Sample grids of fixed prompts x fixed noise, as PNG files and logged images."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image

from src.callbacks.periodic import EveryNGanSteps
from src.utils.images import grid_image, save_grid


def sample_prompt_grid(pl_module: LightningModule, prompts: list[str]) -> torch.Tensor:
    """EMA samples, prompt-major: len(prompts) * n_sample images (N, C, H, W) in [-1, 1]."""
    z = pl_module.sample_z
    n = z.shape[0]
    flat_prompts = [p for p in prompts for _ in range(n)]
    return pl_module.generate(flat_prompts, z.repeat(len(prompts), 1))


class SampleGrid(EveryNGanSteps):
    """Every `every_n_steps` G updates (and at the end): `<dirpath>/step_XXXXXXX.png`, one row per prompt."""

    def __init__(self, dirpath: str, every_n_steps: int = 250, prompts: list[str] | None = None) -> None:
        super().__init__(every_n_steps)
        self.dirpath = Path(dirpath)
        self.prompts = list(prompts) if prompts else None

    def _prompts(self, trainer: Trainer) -> list[str]:
        return self.prompts or list(trainer.datamodule.sample_prompts)

    @rank_zero_only
    def run(self, trainer: Trainer, pl_module: LightningModule) -> Path:
        """Render, save and log the grid for the current step."""
        step = pl_module.gan_step
        prompts = self._prompts(trainer)
        images = sample_prompt_grid(pl_module, prompts)
        n = pl_module.sample_z.shape[0]
        path = self.dirpath / f"step_{step:07d}.png"
        save_grid(images, path, nrow=n)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                rows = [
                    Image.fromarray(grid_image(images[i * n : (i + 1) * n], nrow=n))
                    for i in range(len(prompts))
                ]
                logger.log_image(key="samples", images=rows, caption=prompts, step=step)
            elif isinstance(logger, TensorBoardLogger):
                log_to_tensorboard(logger, images, prompts, n, step)
        return path


def log_to_tensorboard(
    logger: TensorBoardLogger, images: torch.Tensor, prompts: list[str], n: int, step: int
) -> None:
    """Grid of (N, C, H, W) in [-1, 1], `n` per row, as image `samples`; its prompts as text, row by row."""
    writer = logger.experiment
    writer.add_image("samples", grid_image(images, nrow=n), global_step=step, dataformats="HWC")
    # A Markdown list: TensorBoard's text tab renders it one grid row per line.
    rows = "\n".join(f"- row {i}: {p}" for i, p in enumerate(prompts))
    writer.add_text("samples/prompts", rows, global_step=step)
