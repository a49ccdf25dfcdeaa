"""The prompts an evaluation asks the generator for: class captions, or a captioned folder's own captions."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from src.data.captions import CaptionSpec


@dataclass
class PromptDraw:
    """N prompts, the class each one names ((N,) int64, or None without classes) and the caption
    template each was rendered from (None without templates)."""

    prompts: list[str]
    labels: Tensor | None
    groups: list[str] | None


def class_prompts(spec: CaptionSpec, n: int, g: torch.Generator, heldout: bool = False) -> PromptDraw:
    """Class-balanced prompts (class i % K), each phrased with a random training (or held-out) template."""
    templates = spec.heldout_templates if heldout else spec.templates
    labels = torch.arange(n) % spec.num_classes
    tmpl = torch.randint(len(templates), (n,), generator=g)
    prompts = [spec.render(templates[t], int(c)) for t, c in zip(tmpl.tolist(), labels.tolist())]
    return PromptDraw(prompts, labels, [templates[t] for t in tmpl.tolist()])


def caption_prompts(captions: list[list[str]], n: int, g: torch.Generator) -> PromptDraw:
    """Captions of random real images (one of each image's captions), as the training data describes them."""
    images = torch.randint(len(captions), (n,), generator=g).tolist()
    picks = torch.rand(n, generator=g).tolist()
    prompts = [captions[i][int(p * len(captions[i]))] for i, p in zip(images, picks)]
    return PromptDraw(prompts, None, None)
