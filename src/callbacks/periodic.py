"""Base for callbacks that act every N G updates and once more when training ends."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer


class EveryNGanSteps(Callback):
    """Calls `run(trainer, pl_module)` every `every_n_steps` G updates (<= 0: only at the end)."""

    def __init__(self, every_n_steps: int) -> None:
        super().__init__()
        self.every_n_steps = every_n_steps
        self._last_step = -1
        self.enabled = True

    def run(self, trainer: Trainer, pl_module: LightningModule) -> object:
        raise NotImplementedError

    def _fire(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._last_step = pl_module.gan_step
        self.run(trainer, pl_module)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        step = pl_module.gan_step
        if (
            self.enabled
            and self.every_n_steps > 0
            and step % self.every_n_steps == 0
            and step != self._last_step
        ):
            self._fire(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.enabled and pl_module.gan_step != self._last_step:
            self._fire(trainer, pl_module)
