"""Word-level text for G and D: packed text features, and attention from image positions to words.

Text encoders with token outputs return one tensor (N, 1 + L, d): row 0 the sentence vector, rows 1..L
the words, zero rows for padding. Every G and D reads row 0 (`sentence`); the word-attention variants
also read the words, as AttnGAN, GALIP and GigaGAN attend from image positions to text tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def pack_text(sentence: Tensor, words: Tensor, mask: Tensor) -> Tensor:
    """sentence (N, d), words (N, L, d), mask (N, L) bool -> (N, 1 + L, d) with padded rows zeroed."""
    return torch.cat([sentence[:, None], words * mask[..., None].to(words.dtype)], dim=1)


def sentence(t: Tensor) -> Tensor:
    """The sentence vector of text features: (N, d) stays, (N, 1 + L, d) -> row 0 (N, d)."""
    return t if t.dim() == 2 else t[:, 0]


def words(t: Tensor) -> tuple[Tensor, Tensor] | None:
    """Word rows and their mask of packed text features (N, 1 + L, d) -> ((N, L, d), (N, L) bool);
    None for sentence-only features (N, d)."""
    if t.dim() == 2:
        return None
    w = t[:, 1:]
    return w, w.detach().abs().amax(-1) > 0


class WordAttention(nn.Module):
    """Cross-attention from every position of a feature map to the words (plus a learned null word,
    so a caption with nothing to attend to is still defined); the result is added to the map."""

    def __init__(
        self, channels: int, text_dim: int, size: int, heads: int = 4, zero_init: bool = True
    ) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"word attention: {channels} channels do not split into {heads} heads")
        self.heads = heads
        # Positions carry "where": a learned embedding per position lets "top left" words land there.
        self.pos = nn.Parameter(torch.randn(1, channels, size, size) * 0.02)
        self.q = nn.Conv2d(channels, channels, 1)
        self.kv = nn.Linear(text_dim, 2 * channels)
        self.null = nn.Parameter(torch.zeros(1, 1, text_dim))
        self.out = nn.Conv2d(channels, channels, 1)
        if zero_init:
            # Starts as the identity map: G begins as its sentence-only version and learns to use words.
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def context(self, h: Tensor, t: Tensor) -> Tensor:
        """Attended words at every position: h (N, C, H, W), packed text t (N, 1 + L, d) -> (N, C, H, W)."""
        n, c, hh, ww = h.shape
        w, mask = words(t)
        keys = torch.cat([self.null.expand(n, -1, -1).to(w.dtype), w], 1)  # (N, 1 + L, d)
        keep = torch.cat([mask.new_ones(n, 1), mask], 1)  # (N, 1 + L)
        k, v = self.kv(keys).chunk(2, dim=-1)
        q = self.q(h + self.pos).flatten(2).transpose(1, 2)  # (N, HW, C)
        split = lambda x: x.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # noqa: E731 (N, heads, *, C/h)
        out = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=keep[:, None, None, :])
        return out.transpose(1, 2).flatten(2).transpose(1, 2).reshape(n, c, hh, ww)

    def forward(self, h: Tensor, t: Tensor) -> Tensor:
        """h (N, C, H, W) + out(attended words); sentence-only text (N, d) leaves h unchanged."""
        if t.dim() == 2:
            return h
        return h + self.out(self.context(h, t))
