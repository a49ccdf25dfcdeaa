"""Why scene prompts fail: for each category, the share of prompts whose images the reader finds with the
wrong number of digits, the wrong digits, the wrong colours, the right colours on the wrong digits
(binding), or everything right but the place. Each failing prompt counts once, at its first failed check.

    python experiments/scene_errors.py <run>/checkpoints/last.ckpt --per-category 300 [--heldout-phrasing]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.data.scene_text import Description  # noqa: E402
from src.data.scenes import EMPTY, DigitPool  # noqa: E402
from src.data.sources import load_mnist  # noqa: E402
from src.metrics.scene_eval import module_sampler  # noqa: E402
from src.metrics.scene_prompts import CATEGORIES, category_prompts  # noqa: E402
from src.metrics.scene_reader import cached_reader  # noqa: E402
from src.models.factory import load_module  # noqa: E402

CHECKS = ("count", "digits", "colours", "binding", "place")


def first_failure(desc: Description, layout: torch.Tensor) -> str | None:
    """The first of CHECKS a read layout (4, 2) fails for `desc`, or None when it satisfies it."""
    if desc.satisfied_by(layout):
        return None
    found = [(int(d), int(c)) for d, c in layout.tolist() if d != EMPTY]
    if len(found) != len(desc.items):
        return "count"
    stated = [i.digit for i in desc.items if i.digit is not None]
    if not Counter(stated) <= Counter(d for d, _ in found):
        return "digits"
    colours = [i.colour for i in desc.items if i.colour is not None]
    if not Counter(colours) <= Counter(c for _, c in found):
        return "colours"
    unplaced = Description(tuple(type(i)(i.digit, i.colour, None) for i in desc.items))
    return "place" if unplaced.satisfied_by(layout) else "binding"


def reader_and_sampler(ckpt: str, data_dir: str, cache_dir: str, seed: int) -> tuple[Any, Callable]:
    """The cached scenes reader at the checkpoint's size, and its G's sampler (prompts -> (N, 3, H, W))."""
    module, _ = load_module(ckpt)
    module.eval()
    size = int(module.G.image_size)
    pools = tuple(DigitPool(*load_mnist(root=data_dir, train=t, download=False), size) for t in (True, False))
    reader, _ = cached_reader(cache_dir, "scenes", pools, size)
    return reader, module_sampler(module, 256, seed, progress=False)


def add_run_args(ap: argparse.ArgumentParser) -> None:
    """The checkpoint, data, cache and seed arguments both scene probes take."""
    ap.add_argument("ckpt")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--cache-dir", default=str(ROOT / ".cache"))
    ap.add_argument("--seed", type=int, default=0)


def errors(
    ckpt: str, per_category: int, data_dir: str, cache_dir: str, seed: int, heldout_phrasing: bool = False
) -> dict[str, Counter]:
    """category -> Counter of first failures (None = satisfied) of `per_category` training (or held-out)
    phrased prompts."""
    reader, sample = reader_and_sampler(ckpt, data_dir, cache_dir, seed)
    out = {}
    for cat in CATEGORIES:
        prompts = category_prompts(cat, per_category, seed, heldout_phrasing)
        read = reader.read(sample(prompts))
        out[cat] = Counter(first_failure(p.description, lay) for p, lay in zip(prompts, read))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_args(ap)
    ap.add_argument("--per-category", type=int, default=300)
    ap.add_argument("--heldout-phrasing", action="store_true", help="the held-out wordings of the prompts")
    args = ap.parse_args()
    a = args
    table = errors(a.ckpt, a.per_category, a.data_dir, a.cache_dir, a.seed, a.heldout_phrasing)
    print("| category | satisfied | " + " | ".join(f"wrong {c}" for c in CHECKS) + " |")
    print("|---" * (len(CHECKS) + 2) + "|")
    for cat, counts in table.items():
        n = sum(counts.values())
        cells = [counts[None] / n] + [counts[c] / n for c in CHECKS]
        print(f"| {cat} | " + " | ".join(f"{v:.3f}" for v in cells) + " |")


if __name__ == "__main__":
    main()
