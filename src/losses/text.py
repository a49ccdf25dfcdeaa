"""Text-side auxiliary losses."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from src.models.components.text_encoder import PAD


def caption_reconstruction(logits: Tensor, tokens: Tensor) -> Tensor:
    """Cross-entropy of decoded characters (N, V, L) against the caption's tokens (N, L), padding ignored."""
    return F.cross_entropy(logits.float(), tokens, ignore_index=PAD)
