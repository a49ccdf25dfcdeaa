"""Does a run's text vector hold what a caption says? Linear probes (logistic regression) read the first
digit's digit, colour and cell from the EMA text encoder's vectors of scene captions (training phrasings,
half of them naming a second digit), trained on 6,000 captions and scored on 2,000 others. The same probes
on a re-initialised copy of the encoder (same architecture, random weights) give the floor.

    python experiments/text_probe.py <run>/checkpoints/last.ckpt [more checkpoints]

If the probes read the text well but the images ignore it (experiments/word_effect.py), G and D are what
fail to use the words, not the text encoder.
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.data.scene_text import TEMPLATES, Item, item_phrase  # noqa: E402
from src.models.factory import load_module  # noqa: E402

TARGETS = ("digit", "colour", "cell")


def captions(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """n training-phrasing captions and their first item's (digit, colour, cell): (n,) list, (n, 3)."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        d, c, cell = rng.randrange(10), rng.randrange(7), rng.randrange(4)
        phrase = item_phrase(Item(d, c, cell), rng)
        if rng.random() < 0.5:
            phrase += " and " + item_phrase(Item(rng.randrange(10), rng.randrange(7)), rng)
        texts.append(rng.choice(TEMPLATES).format(x=phrase))
        labels.append((d, c, cell))
    return texts, np.array(labels)


@torch.no_grad()
def vectors(encoder: nn.Module, texts: list[str], batch: int = 500) -> np.ndarray:
    """Sentence vectors (N, d) (word-level encoders: their sentence row) of `texts`."""
    out = []
    for i in range(0, len(texts), batch):
        t = encoder(encoder.prepare(texts[i : i + batch]))
        out.append((t if t.dim() == 2 else t[:, 0]).float())
    return torch.cat(out).numpy()


def probe(encoder: nn.Module) -> dict[str, float]:
    """Held-out accuracy of a linear probe for each of TARGETS."""
    from sklearn.linear_model import LogisticRegression

    (train_x, train_y), (test_x, test_y) = captions(6000, 0), captions(2000, 1)
    a, b = vectors(encoder, train_x), vectors(encoder, test_x)
    mu, sd = a.mean(0), a.std(0) + 1e-6
    a, b = (a - mu) / sd, (b - mu) / sd
    return {
        name: float(LogisticRegression(max_iter=2000).fit(a, train_y[:, k]).score(b, test_y[:, k]))
        for k, name in enumerate(TARGETS)
    }


def reinitialised(encoder: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of `encoder` with every layer's parameters drawn afresh (its buffers kept)."""
    fresh = copy.deepcopy(encoder)
    torch.manual_seed(seed)
    for m in fresh.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return fresh.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt", nargs="+")
    args = ap.parse_args()
    print("| encoder | " + " | ".join(TARGETS) + " |\n|---|" + "---|" * len(TARGETS))
    floors: set[str] = set()
    for ckpt in args.ckpt:
        module, _ = load_module(ckpt)
        encoder = module.ema.shadow["text_encoder"].eval()
        kind = type(encoder).__name__
        if kind not in floors:  # one floor per encoder architecture
            floors.add(kind)
            print(f"| {kind}, random weights | " + _cells(probe(reinitialised(encoder))))
        print(f"| {ckpt} (G step {module.gan_step}) | " + _cells(probe(encoder)))


def _cells(scores: dict[str, float]) -> str:
    return " | ".join(f"{v:.3f}" for v in scores.values()) + " |"


if __name__ == "__main__":
    main()
