"""Experiment loggers as PixelGAN configures them (conf/logger/)."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import WandbLogger


class QuietWandbLogger(WandbLogger):
    """Lightning's WandbLogger without the `anonymous` argument it always passes to `wandb.init`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Lightning sends `anonymous=None` when the option is unset; W&B warns that the setting is
        # deprecated whenever the key is present, so drop it unless a user explicitly asked for it.
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
