"""In-memory GAN data: uint8 images cut into batches by one index gather, normalised on the device."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from torch import Tensor

from src.data.captions import CaptionSpec, CaptionTable
from src.data.sources import ImageSet

_MIX = 1_000_003


class TooFewImages(ValueError):
    """The data set cannot fill one GAN step (batch_size x critic_batches samples on every rank)."""


def check_fills_a_step(n: int, batch_size: int, critic_batches: int, world_size: int = 1) -> None:
    """Raise TooFewImages, saying which setting to change, when n images cannot fill one GAN step."""
    per_rank = n // world_size
    if per_rank >= batch_size * critic_batches:
        return
    fits = per_rank // critic_batches
    fix = f"set dataset.batch_size={fits} or lower, or add images" if fits else "add images"
    raise TooFewImages(
        f"{n} images cannot fill one step of {batch_size * critic_batches} samples per rank "
        f"(dataset.batch_size={batch_size} x {critic_batches} critic batches) on {world_size} rank(s): {fix}"
    )


def batch_seed(seed: int, epoch: int, index: int) -> int:
    """A distinct, reproducible seed per (run seed, epoch, batch index)."""
    return ((seed * _MIX + epoch) * _MIX + index) % (2**63 - 1)


def resize_uint8(images: Tensor, size: int) -> Tensor:
    """(N, C, h, w) uint8 -> (N, C, size, size) uint8, antialiased bilinear; done once at load time."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = []
    for chunk in images.split(4096):
        x = F.interpolate(
            chunk.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


class EpochShuffle:
    """A seeded permutation per epoch, sharded by rank; Lightning calls `set_epoch` on it each epoch,
    as it does for DistributedSampler, so the order follows Lightning's epoch counter."""

    def __init__(self, n: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.seed, self.rank, self.world_size = n, seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> Tensor:
        """This rank's share of the epoch's permutation: (n // world_size,) int64."""
        g = torch.Generator().manual_seed(batch_seed(self.seed, self.epoch, -1))
        perm = torch.randperm(self.n, generator=g)[self.rank :: self.world_size]
        return perm[: self.n // self.world_size]


class InMemoryBatchLoader:
    """Batches of `batch_size * critic_batches` samples from tensors held in memory.

    Order and caption draws are a pure function of (seed, epoch, batch index), so a resumed run sees
    exactly the batches an uninterrupted one would. Under DDP each rank takes a disjoint stride of the
    same epoch permutation.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        captions: CaptionSpec | CaptionTable,
        *,
        batch_size: int,
        critic_batches: int = 1,
        seed: int = 0,
        hflip: bool = False,
        rank: int = 0,
        world_size: int = 1,
        resume: tuple[int, int] | None = None,
    ) -> None:
        check_fills_a_step(len(images), batch_size, critic_batches, world_size)
        self.images, self.labels, self.captions = images, labels, captions
        self.per_step = batch_size * critic_batches
        self.seed, self.hflip = seed, hflip
        self.sampler = EpochShuffle(len(images), seed, rank, world_size)
        # (epoch, batches already done in it): the first iteration of that epoch starts there.
        self.resume = resume

    def __len__(self) -> int:
        return (len(self.images) // self.sampler.world_size) // self.per_step

    # Lightning asks loaders for state to resume mid-epoch. Ours needs none of its own: the position is
    # restored from the GANDataModule's state (which counts batches actually trained on, not prefetched).
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        return None

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        epoch = self.sampler.epoch
        start = 0
        if self.resume is not None and self.resume[0] == epoch:
            start = self.resume[1]
        self.resume = None
        perm = self.sampler.indices()
        for b in range(start, len(self)):
            idx = perm[b * self.per_step : (b + 1) * self.per_step]
            g = torch.Generator().manual_seed(batch_seed(self.seed, epoch, b))
            labels = self.labels[idx]
            batch = {
                "images": self.images[idx],
                "labels": labels,
                "caption_ids": self.captions.draw(idx, labels, g),
                "mismatch_ids": self.captions.mismatch(idx, labels, g),
            }
            if self.hflip:
                batch["flip"] = torch.rand(len(idx), generator=g) < 0.5
            yield batch


class GANDataModule(LightningDataModule):
    """A class-labelled image data set with template captions, served from memory."""

    def __init__(
        self,
        *,
        name: str,
        source: Callable[..., ImageSet],
        data_dir: str,
        image_size: int,
        channels: int,
        captions: Mapping[str, Any] | None,
        batch_size: int = 64,
        critic_batches: int = 1,
        hflip: bool = False,
        download: bool = True,
        seed: int = 0,
        train_steps: int | None = None,  # the data set's default run length: trainer.max_steps reads it
        evaluator_target: str | None = None,
    ) -> None:
        super().__init__()
        # A class with `from_datamodule` that scores this data set's samples (src.evaluate, EvalCallback);
        # None: the reference classifier of its labels (or, for captioned folders, Inception metrics only).
        self.evaluator_target = evaluator_target
        self.name, self.source, self.data_dir = name, source, str(Path(data_dir).expanduser())
        self.image_size, self.channels, self.batch_size = image_size, channels, batch_size
        self.critic_batches, self.hflip, self.download, self.seed = critic_batches, hflip, download, seed
        self.spec = (
            CaptionSpec(
                tuple(captions["class_names"]),
                tuple(captions["templates"]),
                tuple(captions.get("heldout_templates") or ()),
                augment=int(captions.get("augment") or 0),
                augment_seed=seed,
            )
            if captions is not None
            else None
        )
        self.train_images: Tensor | None = None
        self.train_labels: Tensor | None = None
        self._resume: tuple[int, int] | None = None

    # --- captions -----------------------------------------------------------------------------
    @property
    def caption_source(self) -> CaptionSpec | CaptionTable:
        """What batches draw captions from (templates per class here; per-image captions for folders)."""
        return self.spec

    @property
    def captions(self) -> list[str]:
        """Training caption bank; batches refer to it by `caption_ids`."""
        return self.caption_source.bank()

    @property
    def true_caption_count(self) -> int:
        """How many of `captions` (a prefix) are true of some training image; the rest are hard negatives."""
        return getattr(self.caption_source, "true_count", None) or len(self.captions)

    @property
    def sample_prompts(self) -> list[str]:
        """Fixed prompts for sample grids (one per class, first template; first captions for folders)."""
        return self.caption_source.prompts()

    # --- loading ------------------------------------------------------------------------------
    def load_split(self, train: bool = True, download: bool = False) -> ImageSet:
        """Whole split as (uint8 (N, C, S, S) at the configured size, int64 labels (N,))."""
        images, labels = self.source(root=self.data_dir, train=train, download=download)
        if images.shape[1] != self.channels:
            raise ValueError(
                f"{self.name}: images have {images.shape[1]} channels, config says {self.channels}"
            )
        return resize_uint8(images, self.image_size), labels

    def prepare_data(self) -> None:
        self.source(root=self.data_dir, train=True, download=self.download)

    def setup(self, stage: str | None = None) -> None:
        if self.train_images is None:
            self.train_images, self.train_labels = self.load_split(train=True)
        self.check_size()

    def check_size(self) -> None:
        """Fail before training (not at the first batch) when the data cannot fill one GAN step."""
        world = self.trainer.world_size if self.trainer is not None else 1
        check_fills_a_step(len(self.train_images), self.batch_size, self.critic_batches, world)

    def train_dataloader(self) -> InMemoryBatchLoader:
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        return InMemoryBatchLoader(
            self.train_images,
            self.train_labels,
            self.caption_source,
            batch_size=self.batch_size,
            critic_batches=self.critic_batches,
            seed=self.seed,
            hflip=self.hflip,
            rank=rank,
            world_size=world,
            resume=self._resume,
        )

    def on_after_batch_transfer(self, batch: dict[str, Tensor], dataloader_idx: int) -> dict[str, Tensor]:
        """uint8 -> float in [-1, 1] (and random flips) on the training device, whole batch at once."""
        x = batch["images"].float().div_(127.5).sub_(1.0)
        if "flip" in batch:
            x = torch.where(batch.pop("flip")[:, None, None, None], x.flip(3), x)
        batch["images"] = x
        return batch

    # --- exact resume -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.trainer is None:
            return {}
        progress = self.trainer.fit_loop.epoch_loop.batch_progress.current
        return {"epoch": self.trainer.current_epoch, "offset": progress.processed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:
            self._resume = (int(state_dict["epoch"]), int(state_dict["offset"]))


class TableDataModule(GANDataModule):
    """A GANDataModule whose images carry their own captions (a CaptionTable), built once by `build`."""

    def __init__(self, *, sample_prompts: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table: CaptionTable | None = None
        self._sample_prompts = list(sample_prompts) if sample_prompts else None

    def build(self) -> tuple[Tensor, Tensor, CaptionTable]:
        """The training images (uint8 (N, C, S, S)), their labels (N, ...) and captions."""
        raise NotImplementedError

    def _load(self) -> None:
        if self.table is None:
            self.train_images, self.train_labels, self.table = self.build()

    def setup(self, stage: str | None = None) -> None:
        self._load()
        self.check_size()

    @property
    def caption_source(self) -> CaptionTable:
        self._load()
        return self.table

    @property
    def sample_prompts(self) -> list[str]:
        return self._sample_prompts or super().sample_prompts
