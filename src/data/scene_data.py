"""`dataset=scenes`: rendered digit scenes (src/data/scenes.py) served with several true captions each."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from torch import Tensor

from src.data.captions import CaptionTable, english_words, noise_caption
from src.data.datamodule import TableDataModule
from src.data.scene_text import (
    ALL_EDITS,
    CONTENT_WORDS,
    EDITS,
    GRAMMAR_WORDS,
    STRUCTURE_WORDS,
    hard_negative,
    scene_captions,
)
from src.data.scenes import DigitPool, make_scenes
from src.data.sources import ImageSet

# The grammar's longest captions run to ~160 characters (4 digits, each with colour and cell); the scenes'
# char-CNN reads 176 (text_encoder=charcnn_long).
NOISED_MAX_CHARS = 160
# What caption noise writes: random letter strings, or English words (none of the grammar's nor their stems).
NOISE_WORDS = ("strings", "english")


class SceneDataModule(TableDataModule):
    """`dataset=scenes`: rendered digit scenes with several true captions each; labels are layouts."""

    def __init__(
        self,
        *,
        name: str = "scenes",
        digit_source: Callable[..., ImageSet],
        data_dir: str,
        image_size: int = 32,
        channels: int = 3,
        num_scenes: int = 50000,
        captions_per_scene: int = 4,
        heldout_pairs: bool = True,
        hard_negatives: int = 0,
        hard_share: float = 0.5,
        hard_negative_edits: Sequence[str] = EDITS,
        caption_noise: float = 0.0,
        caption_noise_words: str = "strings",
        caption_noise_marks: int = 0,
        batch_size: int = 64,
        critic_batches: int = 1,
        download: bool = True,
        seed: int = 0,
        sample_prompts: list[str] | None = None,
        train_steps: int | None = None,
        # Scenes have no single class to check: a layout reader scores them (also the default for the
        # checkpoints written before the YAML named it).
        evaluator_target: str = "src.metrics.scene_eval.SceneEvaluator",
    ) -> None:
        if channels != 3:
            raise ValueError(f"scenes are RGB: dataset.channels must be 3, got {channels}")
        if image_size < 16 or image_size % 2:
            raise ValueError(f"dataset.image_size must be even and >= 16 for a 2x2 grid, got {image_size}")
        super().__init__(
            name=name,
            source=digit_source,
            data_dir=data_dir,
            image_size=image_size,
            channels=channels,
            captions=None,
            batch_size=batch_size,
            download=download,
            critic_batches=critic_batches,
            seed=seed,
            sample_prompts=sample_prompts,
            evaluator_target=evaluator_target,
        )
        self.num_scenes, self.captions_per_scene = num_scenes, captions_per_scene
        self.heldout_pairs = heldout_pairs
        if hard_negatives < 0:
            raise ValueError(f"dataset.hard_negatives must be >= 0, got {hard_negatives}")
        if not 0.0 <= hard_share <= 1.0:
            raise ValueError(f"dataset.hard_share must be in [0, 1], got {hard_share}")
        self.hard_negatives, self.hard_share = hard_negatives, hard_share
        unknown = sorted(set(hard_negative_edits) - set(ALL_EDITS))
        if unknown or not hard_negative_edits:
            raise ValueError(
                f"dataset.hard_negative_edits: a non-empty list of {', '.join(ALL_EDITS)} (got {unknown})"
            )
        self.hard_negative_edits = tuple(hard_negative_edits)
        if not 0.0 <= caption_noise <= 1.0:
            raise ValueError(f"dataset.caption_noise must be in [0, 1], got {caption_noise}")
        self.caption_noise = caption_noise
        if caption_noise_words not in NOISE_WORDS:
            raise ValueError(
                f"dataset.caption_noise_words: one of {', '.join(NOISE_WORDS)}, got {caption_noise_words!r}"
            )
        self.caption_noise_words = caption_noise_words
        if caption_noise_marks < 0:
            raise ValueError(f"dataset.caption_noise_marks must be >= 0, got {caption_noise_marks}")
        self.caption_noise_marks = caption_noise_marks

    def digit_pool(self, train: bool = True, download: bool = False) -> DigitPool:
        """The real digits scenes are painted with (MNIST's training split for training)."""
        images, labels = self.source(root=self.data_dir, train=train, download=download)
        return DigitPool(images, labels, self.image_size)

    def load_split(self, train: bool = True, download: bool = False) -> ImageSet:
        """Scenes of the training or the test split's digits: (uint8 (N, 3, S, S), layouts (N, 4, 2))."""
        if train:
            self._load()
            return self.train_images, self.train_labels
        # Test scenes: the test split's digits, another seed, every pair allowed.
        return make_scenes(
            self.num_scenes // 5,
            self.digit_pool(train=False),
            self.image_size,
            self.seed + 1,
            heldout_pairs=False,
        )

    def build(self) -> tuple[Tensor, Tensor, CaptionTable]:
        images, layouts = make_scenes(
            self.num_scenes,
            self.digit_pool(train=True),
            self.image_size,
            self.seed,
            heldout_pairs=self.heldout_pairs,
        )
        rng = random.Random(self.seed)
        captions = [scene_captions(lay, self.captions_per_scene, rng) for lay in layouts]
        negatives = None
        if self.hard_negatives:
            # Their own random stream: the true captions stay those of a run without hard negatives.
            neg_rng = random.Random(f"hard negatives {self.seed}")
            edits, held = self.hard_negative_edits, self.heldout_pairs
            negatives = [
                [n for _ in range(self.hard_negatives) if (n := hard_negative(lay, neg_rng, held, edits))]
                for lay in layouts
            ]
        if self.caption_noise:
            captions = self._noised(captions, f"caption noise {self.seed}")
            # At the same rate, or the matching-aware D would learn that noise means a match.
            negatives = negatives and self._noised(negatives, f"negative noise {self.seed}")
        if negatives is None:
            return images, layouts, CaptionTable(captions)
        return images, layouts, CaptionTable(captions, negatives, self.hard_share)

    def _noised(self, rows: list[list[str]], stream: str) -> list[list[str]]:
        """Each caption rewritten with `caption_noise` probability: other words than the claims' replaced by
        pool words (random strings or English), dropped or added, so phrasings never seen read as noise
        around the same claims."""
        rng = random.Random(stream)
        keep = CONTENT_WORDS | STRUCTURE_WORDS
        pool = english_words(GRAMMAR_WORDS) if self.caption_noise_words == "english" else ()
        out = []
        for row in rows:
            out.append([])
            for text in row:
                noised = (
                    noise_caption(text, keep, GRAMMAR_WORDS, rng, pool=pool, marks=self.caption_noise_marks)
                    if rng.random() < self.caption_noise
                    else text
                )
                # A text encoder's window cuts longer captions, and a cut caption may say less than is true.
                out[-1].append(noised if len(noised) <= max(len(text), NOISED_MAX_CHARS) else text)
        return out
