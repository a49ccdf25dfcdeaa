"""What a scene caption claims (a Description) and how it is worded (training and held-out phrasings).

A Description lists every digit of the scene (so its count is exact), each with what the caption states
about it: digit, colour, cell; unstated attributes are free. It may add one relation between two items.
Captions are rendered from descriptions by a small grammar; `heldout=True` wordings never occur in
training, so the evaluation can ask whether a model follows new phrasings of the same claims.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import permutations

from torch import Tensor

from src.data.scenes import CELLS, COLOURS, EMPTY

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
PLURALS = ("zeros", "ones", "twos", "threes", "fours", "fives", "sixes", "sevens", "eights", "nines")
COUNTS = ("no", "one", "two", "three", "four")
# name -> (test on (row, col) of the first item vs the second, training wording, held-out wording)
RELATIONS = {
    "above": (lambda a, b: a[0] < b[0], "above", "higher than"),
    "below": (lambda a, b: a[0] > b[0], "below", "lower than"),
    "left of": (lambda a, b: a[1] < b[1], "to the left of", "left of"),
    "right of": (lambda a, b: a[1] > b[1], "to the right of", "right of"),
}
TEMPLATES = ("{x}", "a picture of {x}", "an image of {x}", "{x} on a black background", "a scene with {x}")
HELDOUT_TEMPLATES = ("there is {x}", "this shows {x}", "{x}, drawn in coloured ink")
# The words that carry a description's claims (digits, counts, colours, cells, relations): a caption rewrite
# that keeps these, in order, keeps its meaning. Every word the grammar can write, in either phrasing, is in
# GRAMMAR_WORDS, so random strings standing in for the others never spell one (nor leak a held-out word).
CONTENT_WORDS = frozenset(
    (*map(str, range(10)), *(f"{d}s" for d in range(10)), *WORDS, *PLURALS, *COUNTS, *COLOURS)
    + tuple(w for c in CELLS for w in c.split())
    + ("digit", "digits", "above", "below")
)
# Kept by caption noise too: the articles and "and" mark where one digit's phrase ends and the next begins.
STRUCTURE_WORDS = frozenset({"a", "an", "and"})
GRAMMAR_WORDS = (
    CONTENT_WORDS
    | STRUCTURE_WORDS
    | {"in", "at", "the", "coloured", "corner"}
    | {
        w.strip(",")
        for text in (*TEMPLATES, *HELDOUT_TEMPLATES, *(r for _, a, b in RELATIONS.values() for r in (a, b)))
        for w in text.replace("{x}", "").split()
        if w.strip(",")
    }
)


@dataclass(frozen=True)
class Item:
    """One digit of a description; None = not stated (any digit / colour / cell)."""

    digit: int | None = None
    colour: int | None = None
    cell: int | None = None


@dataclass(frozen=True)
class Description:
    """Every digit of a scene as the caption states it, and optionally `relation` = (i, name, j)."""

    items: tuple[Item, ...]
    relation: tuple[int, str, int] | None = None

    def satisfied_by(self, layout: Tensor) -> bool:
        """Whether a layout (4, 2) (true or read from an image) holds exactly these digits as stated."""
        cells = occupied_cells(layout)
        if len(cells) != len(self.items):
            return False
        for assign in permutations(cells):
            if all(_fits(item, cell) for item, cell in zip(self.items, assign)) and self._related(assign):
                return True
        return False

    def _related(self, assign: tuple[tuple[int, int, int], ...]) -> bool:
        if self.relation is None:
            return True
        i, name, j = self.relation
        a, b = assign[i][0], assign[j][0]
        return RELATIONS[name][0](divmod(a, 2), divmod(b, 2))


def occupied_cells(layout: Tensor) -> list[tuple[int, int, int]]:
    """(cell, digit, colour) of each non-empty cell of a layout (4, 2), in cell order."""
    return [(c, int(layout[c, 0]), int(layout[c, 1])) for c in range(len(CELLS)) if layout[c, 0] != EMPTY]


def _fits(item: Item, cell: tuple[int, int, int]) -> bool:
    where, digit, colour = cell
    return (
        (item.digit is None or item.digit == digit)
        and (item.colour is None or item.colour == colour)
        and (item.cell is None or item.cell == where)
    )


def true_relations(a: int, b: int) -> list[str]:
    """Relation names that hold between cells a and b (indices into CELLS)."""
    return [name for name, (test, _, _) in RELATIONS.items() if test(divmod(a, 2), divmod(b, 2))]


# --- wording -------------------------------------------------------------------------------------
def _digit(d: int, rng: random.Random) -> str:
    return str(d) if rng.random() < 0.5 else WORDS[d]


def _article(word: str) -> str:
    return "an" if word in ("8", "eight") else "a"


def _cell(cell: int, rng: random.Random, heldout: bool) -> str:
    if heldout:
        return f"in the {CELLS[cell]} corner"
    return f"{rng.choice(('in', 'at'))} the {CELLS[cell]}"


def item_phrase(item: Item, rng: random.Random, heldout: bool = False) -> str:
    """'a red 7 in the top left', 'an eight', 'a digit' (digit unstated), ..."""
    noun = "digit" if item.digit is None else _digit(item.digit, rng)
    if item.colour is None:
        text = f"{_article(noun)} {noun}"
    elif heldout:
        text = f"{_article(noun)} {noun} coloured {COLOURS[item.colour]}"
    elif rng.random() < 0.7:
        text = f"a {COLOURS[item.colour]} {noun}"
    else:
        text = f"{_article(noun)} {noun} in {COLOURS[item.colour]}"
    return text if item.cell is None else f"{text} {_cell(item.cell, rng, heldout)}"


def group_phrase(items: list[Item], rng: random.Random, heldout: bool = False) -> str:
    """Items of one digit and colour, no cells: 'three red 7s', 'two sevens', 'four digits'."""
    if len(items) == 1:
        return item_phrase(items[0], rng, heldout)
    first = items[0]
    if first.digit is None:
        noun = "digits"
    else:
        noun = f"{first.digit}s" if rng.random() < 0.5 else PLURALS[first.digit]
    if first.colour is None:
        return f"{COUNTS[len(items)]} {noun}"
    if heldout:
        return f"{COUNTS[len(items)]} {noun} coloured {COLOURS[first.colour]}"
    return f"{COUNTS[len(items)]} {COLOURS[first.colour]} {noun}"


def join(parts: list[str]) -> str:
    """['a', 'b', 'c'] -> 'a, b and c'."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def caption(desc: Description, rng: random.Random, heldout: bool = False) -> str:
    """One wording of a description: items grouped where they share digit and colour (counts), the
    relation first when there is one, inside a training (or held-out) template."""
    order = list(range(len(desc.items)))
    if desc.relation is not None:
        i, name, j = desc.relation
        rel = RELATIONS[name][2 if heldout else 1]
        head = f"{item_phrase(desc.items[i], rng, heldout)} {rel} {item_phrase(desc.items[j], rng, heldout)}"
        rest = [desc.items[k] for k in order if k not in (i, j)]
        text = head if not rest else f"{head}, and {join(_phrases(rest, rng, heldout))}"
    else:
        rng.shuffle(order)
        text = join(_phrases([desc.items[k] for k in order], rng, heldout))
    template = rng.choice(HELDOUT_TEMPLATES if heldout else TEMPLATES)
    return template.format(x=text)


def _phrases(items: list[Item], rng: random.Random, heldout: bool) -> list[str]:
    groups: dict[object, list[Item]] = {}
    for k, item in enumerate(items):
        # Items with a cell are named one by one; the others are counted when alike.
        groups.setdefault(item if item.cell is None else k, []).append(item)
    return [
        group_phrase(g, rng, heldout) if len(g) > 1 else item_phrase(g[0], rng, heldout)
        for g in groups.values()
    ]


# --- training captions ---------------------------------------------------------------------------
def describe(layout: Tensor, rng: random.Random) -> Description:
    """A random true description of a layout (4, 2) at a random level of detail."""
    cells = occupied_cells(layout)
    kind = rng.random()
    if kind < 0.1:  # "three digits", "two red digits"
        same = len({col for _, _, col in cells}) == 1 and rng.random() < 0.5
        return Description(tuple(Item(colour=col if same else None) for _, _, col in cells))
    p_colour, p_cell = rng.choice((0.0, 0.5, 1.0)), rng.choice((0.0, 0.0, 0.3, 1.0))
    items = tuple(
        Item(d, col if rng.random() < p_colour else None, c if rng.random() < p_cell else None)
        for c, d, col in cells
    )
    if len(cells) >= 2 and kind < 0.4:
        i, j = rng.sample(range(len(cells)), 2)
        names = true_relations(cells[i][0], cells[j][0])
        # The related pair is placed by the relation, not by cells.
        items = tuple(Item(it.digit, it.colour, None) if k in (i, j) else it for k, it in enumerate(items))
        return Description(items, (i, rng.choice(names), j))
    return Description(items)


OPPOSITE = {"above": "below", "below": "above", "left of": "right of", "right of": "left of"}
# Every edit `edit` knows; "copy" is not among the defaults of `edit` so that its random stream (and runs
# measured before it) stay as they were: the data set asks for it (dataset.hard_negative_edits).
EDITS = ("count", "digit", "colour", "cell", "swap", "relation")
ALL_EDITS = (*EDITS, "copy")


def edit(desc: Description, rng: random.Random, kinds: tuple[str, ...] = EDITS) -> Description:
    """One random edit of a description, of one of `kinds` that applies: a stated digit, colour or cell
    changed, two digits' colours or digits swapped, the relation reversed, one digit added or dropped
    (NegCLIP's hard negatives, Yuksekgonul et al. 2023: a swap keeps every word and changes only which digit
    each belongs to), or one stated digit copied onto another ("a 3 and a 5" -> "two 3s": what a G that
    draws one digit twice shows)."""
    items = list(desc.items)
    stated = [k for k in ("digit", "colour", "cell") if any(getattr(i, k) is not None for i in items)]
    swaps = [k for k in ("digit", "colour") if len({getattr(i, k) for i in items} - {None}) > 1]
    options = ["count", *stated] + (["swap"] if swaps else []) + (["relation"] if desc.relation else [])
    options += ["copy"] if "digit" in swaps else []
    allowed = [k for k in options if k in kinds]
    if not allowed:  # none of the asked edits applies: unchanged, so a caller looking for a false one retries
        return desc
    kind = rng.choice(allowed)
    if kind == "copy":
        a = rng.choice([n for n, it in enumerate(items) if it.digit is not None])
        b = rng.choice([n for n, it in enumerate(items) if it.digit not in (None, items[a].digit)])
        items[b] = Item(**{**items[b].__dict__, "digit": items[a].digit})
        return Description(tuple(items), desc.relation)
    if kind == "relation":
        i, name, j = desc.relation
        return Description(desc.items, (i, OPPOSITE[name], j))
    if kind == "swap":
        key = rng.choice(swaps)
        a = rng.choice([n for n, it in enumerate(items) if getattr(it, key) is not None])
        va = getattr(items[a], key)
        b = rng.choice([n for n, it in enumerate(items) if getattr(it, key) not in (None, va)])
        vb = getattr(items[b], key)
        items[a], items[b] = Item(**{**items[a].__dict__, key: vb}), Item(**{**items[b].__dict__, key: va})
        return Description(tuple(items), desc.relation)
    if kind == "count":
        related = set() if desc.relation is None else {desc.relation[0], desc.relation[2]}
        droppable = [k for k in range(len(items)) if k not in related]
        if len(items) < len(CELLS) and (rng.random() < 0.5 or len(items) == 1 or not droppable):
            return Description((*items, Item(rng.randrange(10), None, None)), desc.relation)
        k = rng.choice(droppable)
        keep = items[:k] + items[k + 1 :]
        rel = desc.relation
        if rel is not None:  # indices after the dropped item shift down by one
            rel = (rel[0] - (rel[0] > k), rel[1], rel[2] - (rel[2] > k))
        return Description(tuple(keep), rel)
    k = rng.choice([n for n, it in enumerate(items) if getattr(it, kind) is not None])
    size = {"digit": 10, "colour": len(COLOURS), "cell": len(CELLS)}[kind]
    old = getattr(items[k], kind)
    new = rng.choice([v for v in range(size) if v != old])
    items[k] = Item(**{**items[k].__dict__, kind: new})
    return Description(tuple(items), desc.relation)


def false_description(
    layout: Tensor, rng: random.Random, heldout_pairs: bool, tries: int = 8, edits: tuple[str, ...] = EDITS
) -> Description | None:
    """A description one edit away from a true one of `layout` (4, 2) that is false of it and, when held-out
    digit/colour pairs are kept out of training, states none of them; None if `tries` edits found none."""
    for _ in range(tries):
        desc = edit(describe(layout, rng), rng, edits)
        stated = [(i.digit, i.colour) for i in desc.items if i.digit is not None and i.colour is not None]
        if heldout_pairs and any(c == d % 6 for d, c in stated):
            continue
        if not desc.satisfied_by(layout):
            return desc
    return None


def hard_negative(
    layout: Tensor, rng: random.Random, heldout_pairs: bool, edits: tuple[str, ...] = EDITS
) -> str | None:
    """A training-phrased caption of a `false_description` of `layout` (4, 2) by one of `edits`, or None."""
    desc = false_description(layout, rng, heldout_pairs, edits=edits)
    return None if desc is None else caption(desc, rng)


def scene_captions(layout: Tensor, count: int, rng: random.Random) -> list[str]:
    """`count` distinct-where-possible true training captions of one layout (4, 2)."""
    out: list[str] = []
    for _ in range(4 * count):
        text = caption(describe(layout, rng), rng)
        if text not in out:
            out.append(text)
        if len(out) == count:
            break
    return out
