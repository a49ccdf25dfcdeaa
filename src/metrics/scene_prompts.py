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


@dataclass(frozen=True)
class Category:
    """How a category's layouts are drawn and what its prompts state about them."""

    counts: tuple[int, ...]  # number of digits, drawn uniformly from these
    states: str  # "digit", "colour" (digit + colour) or "place" (a cell for one digit, a relation for two)
    same_digit: bool = False  # counting: k copies of one digit
    heldout: bool = False  # the first digit wears its held-out colour


# Held-out pairs mix one and two coloured digits half and half, as seen pairs (colour + colour
# attribution) do, so the two figures compare like with like.
SPECS = {
    "single": Category((1,), "digit"),
    "two": Category((2,), "digit"),
    "counting": Category((2, 3, 4), "digit", same_digit=True),
    "colour": Category((1,), "colour"),
    "position": Category((1, 2), "place"),
    "colour_attribution": Category((2,), "colour"),
    "heldout_pairs": Category((1, 2), "colour", heldout=True),
}
assert tuple(SPECS) == CATEGORIES


def draw_case(category: str, rng: random.Random) -> tuple[Description, Tensor]:
    """A layout for `category` and the description its prompt states: (Description, (4, 2))."""
    spec = SPECS[category]
    k = rng.choice(spec.counts)
    cells = rng.sample(range(len(CELLS)), k)
    digits = [rng.randrange(NUM_DIGITS)] * k if spec.same_digit else rng.sample(range(NUM_DIGITS), k)
    colours = [_colour(rng, d, spec.heldout and i == 0) for i, d in enumerate(digits)]
    if spec.states == "colour":
        while k == 2 and colours[0] == colours[1]:  # two colours, so binding is what is tested
            colours[1] = _colour(rng, digits[1])
    layout = _layout(cells, digits, colours)
    if spec.states == "digit":
        return Description(tuple(Item(d) for d in digits)), layout
    if spec.states == "colour":
        return Description(tuple(Item(d, col) for d, col in zip(digits, colours))), layout
    if k == 1:  # place: a cell
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
