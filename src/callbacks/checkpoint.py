"""Checkpoints named and scheduled by GAN step, written atomically, with `last.ckpt` always current."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities.exceptions import SIGTERMException

from src.callbacks.periodic import EveryNGanSteps


def _atomic_copy(src: Path, dst: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class GANCheckpoint(EveryNGanSteps):
    """Writes `<dirpath>/last.ckpt` and `step_XXXXXXX.ckpt` every `every_n_steps` G updates and at the end,
    and `last.ckpt` alone every `every_n_minutes` of wall-clock time (0: off)."""

    # The time source, an attribute so tests can substitute a fake clock instead of sleeping.
    clock = staticmethod(time.monotonic)

    def __init__(
        self, dirpath: str, every_n_steps: int = 500, keep_periodic: bool = True, every_n_minutes: float = 0.0
    ) -> None:
        super().__init__(every_n_steps)
        self.dirpath = Path(dirpath)
        self.keep_periodic = keep_periodic
        self.every_n_minutes = every_n_minutes
        self._saved_at = 0.0

    @property
    def last_path(self) -> Path:
        return self.dirpath / "last.ckpt"

    def save(self, trainer: Trainer, pl_module: LightningModule, periodic: bool) -> None:
        """Save last.ckpt (all ranks call; rank 0 writes) and, if periodic, a step-named copy."""
        step = pl_module.gan_step
        # Never overwrite a good checkpoint with NaN weights (on a GPU the NaN flag is read lazily).
        pl_module.check_finite()
        # The saved EMA generator carries BatchNorm statistics estimated from its own weights.
        pl_module.refresh_ema_statistics()
        # Full training state (optimizers, loops, callbacks): these checkpoints are for resuming.
        trainer.save_checkpoint(self.last_path, weights_only=False)
        if periodic and self.keep_periodic and trainer.is_global_zero:
            _atomic_copy(self.last_path, self.dirpath / f"step_{step:07d}.ckpt")
        self._last_step = step
        self._saved_at = self.clock()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._saved_at = self.clock()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        super().on_train_batch_end(trainer, pl_module, *args)  # the step schedule first; it resets the clock
        if not (self.enabled and self.every_n_minutes > 0) or pl_module.gan_step == self._last_step:
            return
        due = self.clock() - self._saved_at >= 60.0 * self.every_n_minutes
        # Saving is collective and ranks' clocks differ: rank 0's clock decides for all of them.
        if trainer.strategy.broadcast(due, src=0):
            self.save(trainer, pl_module, periodic=False)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # A rollback after a NaN reloads what this callback wrote last.
        pl_module.rollback_path = self.last_path
        # A SIGKILL during a write leaves only a temp file behind (the target is replaced atomically).
        if trainer.is_global_zero and self.dirpath.is_dir():
            for stale in self.dirpath.glob(".*.ckpt.*.tmp"):
                stale.unlink(missing_ok=True)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        # SIGTERM/SIGINT (SLURM pre-emption, Ctrl+C) arrive between batches: the state is consistent and
        # worth keeping. Any other error (e.g. divergence) leaves the last good checkpoint untouched.
        if isinstance(exception, KeyboardInterrupt | SIGTERMException) and pl_module.gan_step > 0:
            try:
                pl_module.check_weights_finite()
            except RuntimeError:
                return
            if pl_module.gan_step != self._last_step:
                self.save(trainer, pl_module, periodic=False)

    def run(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.save(trainer, pl_module, periodic=True)
