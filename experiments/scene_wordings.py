"""What one wording does to a scenes model: the same claims in training and held-out phrasings, side by side.

For each prompt of a fixed list (one claim set, several wordings), `--samples` images with the evaluation's
seeded noise, read by the scenes reader: digits per image, the share with the asked number of digits, and
the share that satisfies the claims (as `src.evaluate` counts it).

    python experiments/scene_wordings.py <run>/checkpoints/last.ckpt --samples 200
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.data.scene_text import Description, Item  # noqa: E402
from src.data.scenes import EMPTY  # noqa: E402
from src.metrics.scene_prompts import ScenePrompt  # noqa: E402

sys.path.insert(0, str(ROOT / "experiments"))
from scene_errors import add_run_args, reader_and_sampler  # noqa: E402

THREE, RED_THREE, THREE_TOP_LEFT = (Item(3),), (Item(3, 0),), (Item(3, None, 0),)
THREE_AND_FIVE = (Item(3), Item(5))
# (wording, claims, relation); held-out wordings ("there is", "coloured", "corner", "higher than") last in
# each group.
WORDINGS: tuple[tuple[str, tuple[Item, ...], tuple[int, str, int] | None], ...] = (
    ("a 3", THREE, None),
    ("a picture of a 3", THREE, None),
    ("there is a 3", THREE, None),
    ("this shows a 3", THREE, None),
    ("a 3, drawn in coloured ink", THREE, None),
    ("a red 3", RED_THREE, None),
    ("a 3 in red", RED_THREE, None),
    ("a 3 coloured red", RED_THREE, None),
    ("a 3 in the top left", THREE_TOP_LEFT, None),
    ("a 3 in the top left corner", THREE_TOP_LEFT, None),
    ("a 3 and a 5", THREE_AND_FIVE, None),
    ("there is a 3 and a 5", THREE_AND_FIVE, None),
    ("a 3 above a 5", THREE_AND_FIVE, (0, "above", 1)),
    ("a 3 higher than a 5", THREE_AND_FIVE, (0, "above", 1)),
)


def wording_table(ckpt: str, samples: int, data_dir: str, cache_dir: str, seed: int) -> list[tuple]:
    """(wording, digits per image, share with the asked count, share satisfied) for each of WORDINGS."""
    reader, sample = reader_and_sampler(ckpt, data_dir, cache_dir, seed)
    rows = []
    for text, items, relation in WORDINGS:
        desc = Description(items, relation)
        prompt = ScenePrompt(text, desc, torch.zeros(4, 2, dtype=torch.long), "")  # the layout is unused
        read = reader.read(sample([prompt] * samples))
        count = (read[..., 0] != EMPTY).sum(1)
        ok = sum(desc.satisfied_by(lay) for lay in read) / samples
        rows.append((text, count.float().mean().item(), (count == len(items)).float().mean().item(), ok))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_args(ap)
    ap.add_argument("--samples", type=int, default=200)
    a = ap.parse_args()
    print("| wording | digits per image | asked count | satisfied |")
    print("|---|---|---|---|")
    for text, per_image, counted, ok in wording_table(a.ckpt, a.samples, a.data_dir, a.cache_dir, a.seed):
        print(f"| {text} | {per_image:.2f} | {counted:.3f} | {ok:.3f} |")


if __name__ == "__main__":
    main()
