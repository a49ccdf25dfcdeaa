"""Captions for class-labelled data sets: each class gets several phrasings from templates.

Training draws a template per sample per epoch; `heldout_templates` are never used in training and
exist only so evaluation can ask whether the text encoder generalises to new phrasings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class CaptionSpec:
    """Class names and templates; a template holds `{name}` (class word) and optionally `{index}`."""

    class_names: tuple[str, ...]
    templates: tuple[str, ...]
    heldout_templates: tuple[str, ...] = ()

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

    def bank(self, heldout: bool = False) -> list[str]:
        """All captions, class-major: caption id = label * T + template index."""
        templates = self.heldout_templates if heldout else self.templates
        return [self.render(t, c) for c in range(self.num_classes) for t in templates]

    def caption_ids(self, labels: Tensor, template_ids: Tensor) -> Tensor:
        """Ids into `bank()` for labels (N,) and template indices (N,) -> (N,) int64."""
        return labels.long() * len(self.templates) + template_ids.long()

    def draw(self, idx: Tensor, labels: Tensor, g: torch.Generator) -> Tensor:
        """A random training caption of each sample's class: (N,) ids into `bank()`."""
        return self.caption_ids(labels, sample_template_ids(len(labels), len(self.templates), g))

    def mismatch(self, idx: Tensor, labels: Tensor, g: torch.Generator) -> Tensor:
        """A random caption of a different class for each sample (matching-aware D): (N,) ids."""
        other = mismatched_labels(labels, self.num_classes, g)
        return self.caption_ids(other, sample_template_ids(len(labels), len(self.templates), g))

    def prompts(self, template_index: int = 0, heldout: bool = False) -> list[str]:
        """One prompt per class, in label order."""
        templates = self.heldout_templates if heldout else self.templates
        return [self.render(templates[template_index], c) for c in range(self.num_classes)]

    def label_of(self, text: str) -> int | None:
        """The class a caption names, if it is one of the known (training or held-out) captions."""
        from src.models.components.text_encoder import normalize_text

        key = normalize_text(text)
        for c in range(self.num_classes):
            for t in self.templates + self.heldout_templates:
                if normalize_text(self.render(t, c)) == key:
                    return c
        return None


def sample_template_ids(n: int, num_templates: int, generator: torch.Generator) -> Tensor:
    """Uniform template index per sample: (n,) int64."""
    return torch.randint(num_templates, (n,), generator=generator)


def mismatched_labels(labels: Tensor, num_classes: int, generator: torch.Generator) -> Tensor:
    """A different class for every sample (for matching-aware D): (N,) -> (N,)."""
    shift = torch.randint(1, max(num_classes, 2), labels.shape, generator=generator)
    return (labels + shift) % num_classes


class CaptionTable:
    """Free-form captions, several per image (captioned folders): bank of unique captions + per-image ids."""

    def __init__(self, captions: list[list[str]]) -> None:
        if any(not c for c in captions):
            raise ValueError("every image needs at least one caption")
        self.captions = captions
        index: dict[str, int] = {}
        rows = [[index.setdefault(c, len(index)) for c in caps] for caps in captions]
        self._bank = list(index)
        width = max(len(r) for r in rows)
        self.ids = torch.tensor([r + [r[0]] * (width - len(r)) for r in rows], dtype=torch.long)
        self.counts = torch.tensor([len(r) for r in rows], dtype=torch.long)

    def bank(self, heldout: bool = False) -> list[str]:
        """Unique captions; ids index this list. (Folders have no held-out templates.)"""
        return [] if heldout else list(self._bank)

    def draw(self, idx: Tensor, labels: Tensor, g: torch.Generator) -> Tensor:
        """One of each image's own captions, uniformly: (N,) ids."""
        pick = (torch.rand(len(idx), generator=g) * self.counts[idx]).long()
        return self.ids[idx, pick]

    def mismatch(self, idx: Tensor, labels: Tensor, g: torch.Generator) -> Tensor:
        """A caption of another image: (N,) ids."""
        n = len(self.counts)
        other = (idx + torch.randint(1, max(n, 2), idx.shape, generator=g)) % n
        return self.draw(other, labels, g)

    def prompts(self, count: int = 8) -> list[str]:
        """The first caption of the first `count` images, for sample grids."""
        return [caps[0] for caps in self.captions[:count]]
