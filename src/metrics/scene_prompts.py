"""Evaluation prompts for digit scenes, per category in the manner of GenEval (Ghosh et al. 2023).

Each prompt comes from a layout drawn for its category: the text (training or held-out phrasing) states
part of it, the Description says what an image must show to satisfy the text, and the layout itself is
the full specification a structured-label model is given instead of the text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import Tensor

from src.data.scene_text import Description, Item, caption, true_relations
from src.data.scenes import CELLS, COLOURS, EMPTY, NUM_DIGITS, heldout_colour

CATEGORIES = ("single", "two", "counting", "colour", "position", "colour_attribution", "heldout_pairs")


@dataclass(frozen=True)
class ScenePrompt:
    """One evaluation prompt: its text, what it claims, the layout it was drawn from, its category."""

    text: str
    description: Description
    layout: Tensor  # (4, 2) int64
    category: str


def _colour(rng: random.Random, digit: int, heldout: bool = False) -> int:
    """A colour for a digit: its held-out colour, or any seen one."""
    if heldout:
        return int(heldout_colour(digit))
    return rng.choice([c for c in range(len(COLOURS)) if c != heldout_colour(digit)])


def _layout(cells: list[int], digits: list[int], colours: list[int]) -> Tensor:
    out = torch.full((len(CELLS), 2), EMPTY, dtype=torch.long)
    for c, d, col in zip(cells, digits, colours):
        out[c] = torch.tensor([d, col])
    return out


def draw_case(category: str, rng: random.Random) -> tuple[Description, Tensor]:
    """A layout for `category` and the description its prompt states: (Description, (4, 2))."""
    k = {"two": 2, "colour_attribution": 2, "counting": rng.randint(2, 4)}.get(category, 1)
    if category == "position" or (category == "heldout_pairs" and rng.random() < 0.5):
        k = rng.choice((1, 2))
    cells = rng.sample(range(len(CELLS)), k)
    digits = [rng.randrange(NUM_DIGITS)] * k if category == "counting" else rng.sample(range(NUM_DIGITS), k)
    held = [category == "heldout_pairs" and i == 0 for i in range(k)]
    colours = [_colour(rng, d, h) for d, h in zip(digits, held)]
    if category == "colour_attribution" or (category == "heldout_pairs" and k == 2):
        while k == 2 and colours[0] == colours[1]:  # two colours, so binding is what is tested
            colours[1] = _colour(rng, digits[1])
    layout = _layout(cells, digits, colours)
    if category in ("single", "two", "counting"):
        return Description(tuple(Item(d) for d in digits)), layout
    if category in ("colour", "colour_attribution", "heldout_pairs"):
        return Description(tuple(Item(d, col) for d, col in zip(digits, colours))), layout
    if k == 1:  # position: a cell
        return Description((Item(digits[0], cell=cells[0]),)), layout
    relation = rng.choice(true_relations(cells[0], cells[1]))
    return Description((Item(digits[0]), Item(digits[1])), (0, relation, 1)), layout


def category_prompts(category: str, n: int, seed: int, heldout_phrasing: bool = False) -> list[ScenePrompt]:
    """n prompts of one category, a pure function of (category, n, seed, phrasing)."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown scene category {category!r}: one of {', '.join(CATEGORIES)}")
    rng = random.Random(f"{seed}/{category}/{heldout_phrasing}")
    out = []
    for _ in range(n):
        desc, layout = draw_case(category, rng)
        out.append(ScenePrompt(caption(desc, rng, heldout=heldout_phrasing), desc, layout, category))
    return out


def evaluation_prompts(total: int, seed: int, heldout_phrasing: bool = False) -> list[ScenePrompt]:
    """`total` prompts split evenly over CATEGORIES (the remainder to the first ones)."""
    per, extra = divmod(total, len(CATEGORIES))
    return [
        p
        for i, cat in enumerate(CATEGORIES)
        for p in category_prompts(cat, per + (i < extra), seed, heldout_phrasing)
    ]
