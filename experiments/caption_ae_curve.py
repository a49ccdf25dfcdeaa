"""Learning curve of the caption autoencoder (`text_encoder=symconv`) on the scene captions: the share of
held-out caption characters it rebuilds (padding not counted) every 100 steps, until a time limit.

    python experiments/caption_ae_curve.py --batch 64 --seconds 420
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.data.scene_text import scene_captions  # noqa: E402
from src.data.scenes import sample_layouts  # noqa: E402
from src.models.components.caption_ae import SymConvEncoder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=50000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seconds", type=float, default=420)
    args = ap.parse_args()
    torch.manual_seed(0)
    # Captions as dataset=scenes writes them (4 a scene) for layouts drawn the same way (not the same
    # scenes: no rendering, no held-out-pair rule); the first 1,024 sorted captions are held out.
    rng = random.Random(0)
    layouts = sample_layouts(args.scenes, torch.Generator().manual_seed(0))
    captions = sorted({c for lay in layouts for c in scene_captions(lay, 4, rng)})
    enc = SymConvEncoder(max_len=176)
    tokens = enc.prepare(captions)
    held, train = tokens[:1024], tokens[1024:]
    print(f"{len(captions)} distinct captions; {len(held)} held out")
    opt = torch.optim.Adam(enc.parameters(), lr=args.lr)
    g = torch.Generator().manual_seed(0)
    t0, step = time.time(), 0
    while time.time() - t0 < args.seconds:
        step += 1
        loss, _ = enc.reconstruction(train[torch.randint(len(train), (args.batch,), generator=g)])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            with torch.no_grad():
                loss, right = enc.reconstruction(held)
            took = time.time() - t0
            print(f"step {step:5d}  {took:6.1f} s  held-out characters rebuilt {float(right):.3f}")


if __name__ == "__main__":
    main()
