"""How much does one word of a prompt move the generator? For each (base, edited) prompt pair, the mean
absolute change of the inked pixels (either image brighter than -0.5 in [-1, 1]) over the same noises.
A word the model follows changes its images; a word it ignores changes almost nothing.

    python experiments/word_effect.py <run>/checkpoints/last.ckpt --noises 64
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.models.factory import load_module  # noqa: E402

# (what the edit changes, base prompt, edited prompt)
PAIRS = [
    ("digit", "a red 3", "a red 7"),
    ("digit (held-out pair)", "a red 3", "a red 0"),
    ("colour", "a red 3", "a green 3"),
    ("cell", "a red 3", "a red 3 in the top left"),
    ("cell moved", "a red 3 in the top left", "a red 3 in the bottom right"),
    ("count", "a red 3", "two red 3s"),
    ("relation", "a 3 above a 5", "a 3 below a 5"),
    ("held-out template", "a red 3", "there is a red 3"),
]


@torch.no_grad()
def word_effects(ckpt: str, noises: int, seed: int) -> list[tuple[str, str, str, float]]:
    """(what, base, edited, mean change of inked pixels) for every pair of PAIRS."""
    module, _ = load_module(ckpt)
    module.eval()
    z = torch.randn(noises, module.G.z_dim, generator=torch.Generator().manual_seed(seed))
    rows = []
    for what, base, edited in PAIRS:
        a, b = module.generate([base] * noises, z), module.generate([edited] * noises, z)
        ink = (a > -0.5) | (b > -0.5)
        rows.append((what, base, edited, float((a - b).abs()[ink].mean()) if ink.any() else 0.0))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt")
    ap.add_argument("--noises", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"| edit | prompts | mean change of inked pixels ({args.noises} noises) |\n|---|---|---|")
    for what, base, edited, change in word_effects(args.ckpt, args.noises, args.seed):
        print(f"| {what} | {base} -> {edited} | {change:.3f} |")


if __name__ == "__main__":
    main()
