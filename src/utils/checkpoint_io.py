"""Lightning's checkpoint writes made crash-safe: a checkpoint file is the old complete one or the new."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO

from src.utils.torch_files import atomic_torch_save


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO whose saves go through `atomic_torch_save` (SIGKILL-safe)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        atomic_torch_save(checkpoint, path)
