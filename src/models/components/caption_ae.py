"""The "symmetric convolution" text encoder: a caption autoencoder (Zhang et al. 2017, deconvolutional
paragraph representation learning) whose encoder is kept. Strided 1-D convolutions take the characters
of a caption to one sentence vector; transposed convolutions mirror them and rebuild the characters. It
is pretrained on the data set's training captions before the GAN starts (cached on disk), then frozen or
fine-tuned by the GAN's gradients.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.models.components.text_encoder import PAD, VOCAB_SIZE, tokenize
from src.utils.torch_files import atomic_torch_save, build_lock, read_torch_file

log = logging.getLogger(__name__)


class SymConvEncoder(nn.Module):
    """Characters (N, max_len) -> `stages` stride-2 convs -> flatten -> linear -> sentence vector; the
    mirrored decoder (linear -> transposed convs -> characters) serves only the pretraining."""

    def __init__(
        self,
        *,
        embed_dim: int = 128,
        char_dim: int = 32,
        channels: int = 128,
        stages: int = 3,
        max_len: int = 176,
        pretrain_steps: int = 6000,
        pretrain_batch: int = 64,
        pretrain_lr: float = 1e-3,
        freeze: bool = True,
        cache_dir: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if max_len % 2**stages:
            raise ValueError(f"text_encoder.max_len={max_len} must be a multiple of 2**stages={2**stages}")
        self.embed_dim, self.max_len, self.freeze = embed_dim, max_len, freeze
        self.pretrain = {"steps": pretrain_steps, "batch": pretrain_batch, "lr": pretrain_lr, "seed": seed}
        self.cache_dir = cache_dir
        self.short = max_len // 2**stages
        self.embedding = nn.Embedding(VOCAB_SIZE, char_dim, padding_idx=PAD)
        widths = [char_dim] + [channels] * stages
        self.down = nn.ModuleList(nn.Conv1d(a, b, 5, 2, 2) for a, b in zip(widths, widths[1:]))
        self.to_vec = nn.Linear(channels * self.short, embed_dim)
        # The mirror: vector -> (channels, max_len / 2**stages) -> transposed convs -> character logits.
        self.from_vec = nn.Linear(embed_dim, channels * self.short)
        self.up = nn.ModuleList(nn.ConvTranspose1d(channels, channels, 4, 2, 1) for _ in range(stages))
        self.to_chars = nn.Conv1d(channels, VOCAB_SIZE, 1)
        # Set once pretrained (or loaded): weights that come with it (init_from, a checkpoint) are kept.
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def prepare(self, texts: list[str]) -> Tensor:
        """Tokenise captions once: list of N strings -> (N, max_len) int64."""
        return tokenize(texts, self.max_len)

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens (N, max_len) int64 -> sentence vectors (N, embed_dim)."""
        h = self.embedding(tokens).transpose(1, 2)
        for conv in self.down:
            h = F.gelu(conv(h))
        return self.to_vec(h.flatten(1))

    def decode(self, v: Tensor) -> Tensor:
        """Sentence vectors (N, embed_dim) -> character logits (N, VOCAB_SIZE, max_len)."""
        h = self.from_vec(v).view(v.shape[0], -1, self.short)
        for conv in self.up:
            h = F.gelu(conv(h))
        return self.to_chars(h)

    def reconstruction(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """tokens (N, max_len) -> (cross-entropy over all positions, padding too: where a caption ends
        counts (), share of the caption characters rebuilt, padding not counted ())."""
        logits = self.decode(self(tokens))
        chars = tokens != PAD
        right = (logits.argmax(1) == tokens)[chars].float().mean()
        return F.cross_entropy(logits, tokens), right

    def fit_captions(self, captions: list[str]) -> bool:
        """Pretrain the autoencoder on the training captions (or load that result from the cache), then
        freeze the encoder if asked; False (nothing changed) when the weights are pretrained already."""
        if bool(self.fitted):
            self.requires_grad_(not self.freeze)
            return False
        unique = sorted(set(captions))
        path = self._cache_path(unique)
        if path is None:
            self._pretrain(self.prepare(unique))
            self.fitted.fill_(True)
        elif not (path.is_file() and self._load(path)):
            # Processes starting together (DDP ranks, Ray trials): one pretrains, the others wait and load.
            with build_lock(path, log.info):
                if not (path.is_file() and self._load(path)):
                    self._pretrain(self.prepare(unique))
                    self.fitted.fill_(True)
                    atomic_torch_save(self.state_dict(), path)
        self.requires_grad_(not self.freeze)
        return True

    def _load(self, path: Path) -> bool:
        """Weights from the cache; False (train again, replace it) for a truncated or foreign file."""
        try:
            self.load_state_dict(read_torch_file(path, OSError, "", "unreadable"))
        except (OSError, RuntimeError) as err:
            log.warning("caption autoencoder: cache %s not used (%s); training again", path, err)
            return False
        log.info("caption autoencoder: loaded %s", path)
        return True

    def _cache_path(self, unique: list[str]) -> Path | None:
        if not self.cache_dir:
            return None
        key = hashlib.sha256("\n".join(unique).encode())
        shapes = [(k, tuple(v.shape)) for k, v in self.state_dict().items()]
        key.update(repr((sorted(self.pretrain.items()), self.max_len, shapes)).encode())
        return Path(self.cache_dir) / f"caption_ae_{key.hexdigest()[:16]}.pt"

    def _pretrain(self, tokens: Tensor) -> None:
        # Fresh weights and a private RNG from the seed alone: the result is what the cache key says (not
        # what the global RNG held), the same on every DDP rank, and the GAN's random stream is untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.pretrain["seed"])
            for m in self.modules():
                if m is not self and hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        tokens = tokens.to(self.fitted.device)
        g = torch.Generator().manual_seed(self.pretrain["seed"])
        held = torch.randperm(len(tokens), generator=g)[: min(1024, len(tokens) // 10)]
        train_ids = torch.ones(len(tokens), dtype=torch.bool)
        train_ids[held] = False
        train, held = tokens[train_ids.to(tokens.device)], held.to(tokens.device)
        opt = torch.optim.Adam(self.parameters(), lr=self.pretrain["lr"])
        was_training = self.training
        self.train()
        steps = self.pretrain["steps"]
        # Minutes of work on a CPU before the GAN's first step: say so, and how far it has got.
        log.info("caption autoencoder: pretraining %d steps on %d captions (once; cached)", steps, len(train))
        for step in range(1, steps + 1):
            pick = torch.randint(len(train), (self.pretrain["batch"],), generator=g)
            batch = train[pick.to(train.device)]
            # The loss alone: the accuracy's argmax over every position is only for the report below.
            loss = F.cross_entropy(self.decode(self(batch)), batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % max(1, steps // 10) == 0 and step < steps:
                log.info("caption autoencoder: step %d/%d, loss %.4f", step, steps, loss.item())
        self.train(was_training)
        with torch.no_grad():
            loss, right = self.reconstruction(tokens[held])
        log.info(
            "caption autoencoder: %d steps on %d captions; held-out characters rebuilt: %.4f (loss %.4f)",
            self.pretrain["steps"],
            len(train),
            float(right),
            float(loss),
        )
