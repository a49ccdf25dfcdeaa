"""Batch-size finder for the training device: Lightning's BatchSizeFinder, counted in GAN steps."""

from __future__ import annotations

import logging

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BatchSizeFinder

log = logging.getLogger(__name__)


class GANBatchSizeFinder(BatchSizeFinder):
    """Before training, doubles (`power`) or bisects (`binsearch`) `dataset.batch_size` until the device runs
    out of memory, then trains with the largest size that fitted. `steps_per_trial` counts GAN steps; the
    data set's batch size is what changes (each D update and the G update use that many images)."""

    def __init__(
        self,
        mode: str = "binsearch",
        steps_per_trial: int = 2,
        init_val: int = 16,
        max_trials: int = 10,
        max_val: int = 8192,
        margin: float = 0.05,
    ) -> None:
        super().__init__(
            mode=mode,
            steps_per_trial=steps_per_trial,
            init_val=init_val,
            max_trials=max_trials,
            batch_arg_name="batch_size",
            margin=margin,
            max_val=max_val,
        )
        self._gan_steps_per_trial = steps_per_trial

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning counts optimizer steps: one GAN step is at most n_critic D updates + 1 G update.
        self._steps_per_trial = self._gan_steps_per_trial * (pl_module.loss.n_critic + 1)
        # The run's G-step budget must not end the trials (their steps are undone afterwards).
        budget, pl_module.max_gan_steps = pl_module.max_gan_steps, -1
        try:
            super().on_fit_start(trainer, pl_module)
        finally:
            pl_module.max_gan_steps = budget
        log.info("batch-size finder: training with dataset.batch_size=%s", self.optimal_batch_size)
