"""Hand-written peer baseline (NOT part of the framework): an SNGAN for digit scenes fed the exact
scene specification as structured labels instead of text.

What a user would write by hand for `dataset=scenes` without text: the layout (4, 2) [digit, colour]
per cell becomes a 72-d label, per cell a one-hot of 11 (digit 0-9 or empty) and a one-hot of the 7
colours (all zero when the cell is empty). Same recipe as sngan_mnist.py, sized for 32x32 RGB:
G = linear -> 2 transposed-conv blocks, reading the label through conditional BatchNorm whose gain and
bias are linear maps of the 72-d vector (the fully connected layer's BatchNorm is per unit, so that
map can put each cell's content at its place); D = spectral-norm convs with a projection head, hinge
loss, Adam(2e-4, betas (0, 0.9)), 2 D steps per G step, batch 64. D's projection is per cell: each
quadrant's pooled features are projected on that cell's 18-d label, so D can check what is where.
No EMA of G: the saved generator is the last one, used in eval mode.

It trains on the same 50,000 scenes as `dataset=scenes` (seed 0, held-out digit/colour pairs never
shown) and is evaluated by the project's scene evaluation, whose prompts carry their full
specification; the peer reads `prompt.layout` and never the text.

    python experiments/baselines/scenes_cgan.py --data ../shared/data --minutes 20 --out runs/scenes_peer.pt
    # on shared cores: a fixed number of G steps (what 20 minutes alone would give), see scenes_peer.md
    python experiments/baselines/scenes_cgan.py --data ../shared/data --steps 3200 --out runs/scenes_peer.pt
    python experiments/baselines/scenes_cgan.py --evaluate runs/scenes_peer.pt --json runs/scenes_peer.json
    python experiments/baselines/scenes_cgan.py --evaluate runs/scenes_peer.pt --grid grid.png
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as sn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from src.data.scenes import COLOURS, DigitPool, make_scenes  # noqa: E402
from src.data.sources import load_mnist  # noqa: E402

Z, CELLS, SIZE = 128, 4, 32
PER_CELL = 11 + len(COLOURS)  # digit 0-9 or empty (index 10), then the colour one-hot
LABEL = CELLS * PER_CELL  # 72


def encode(layouts):
    """Layouts (N, 4, 2) int64, EMPTY = -1 -> labels (N, 4, 18): one-hot digit-or-empty, one-hot colour."""
    digit, colour = layouts[..., 0], layouts[..., 1]
    d = F.one_hot(torch.where(digit < 0, torch.full_like(digit, 10), digit), 11)
    c = F.one_hot(colour.clamp_min(0), len(COLOURS)) * (colour >= 0)[..., None]
    return torch.cat([d, c], -1).float()


class CondBN(nn.Module):
    """BatchNorm whose gain and bias are linear maps of the flat 72-d label (gain starts at 1)."""

    def __init__(self, channels, conv=True):
        super().__init__()
        self.bn = (nn.BatchNorm2d if conv else nn.BatchNorm1d)(channels, affine=False)
        self.gain, self.bias = nn.Linear(LABEL, channels), nn.Linear(LABEL, channels)
        for lin in (self.gain, self.bias):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, h, y):
        shape = (-1, h.shape[1]) + (1,) * (h.dim() - 2)
        return self.bn(h) * (1 + self.gain(y)).view(shape) + self.bias(y).view(shape)


class G(nn.Module):
    """z: (N, 128), y: (N, 4, 18) -> images (N, 3, 32, 32) in [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.z_dim = Z
        self.fc = nn.Linear(Z, 128 * 8 * 8)
        self.bn0 = CondBN(128 * 8 * 8, conv=False)
        self.up1 = nn.ConvTranspose2d(128, 64, 4, 2, 1)
        self.bn1 = CondBN(64)
        self.up2 = nn.ConvTranspose2d(64, 3, 4, 2, 1)

    def forward(self, z, y):
        y = y.flatten(1)
        h = torch.relu(self.bn0(self.fc(z), y)).view(-1, 128, 8, 8)
        return torch.tanh(self.up2(torch.relu(self.bn1(self.up1(h), y))))


class D(nn.Module):
    """x: (N, 3, 32, 32), y: (N, 4, 18) -> hinge logits (N,)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            sn(nn.Conv2d(3, 64, 4, 2, 1)), nn.LeakyReLU(0.1),
            sn(nn.Conv2d(64, 128, 4, 2, 1)), nn.LeakyReLU(0.1),
            sn(nn.Conv2d(128, 128, 3, 1, 1)), nn.LeakyReLU(0.1),
        )
        self.lin = sn(nn.Linear(128, 1))
        self.embed = sn(nn.Linear(PER_CELL, 128, bias=False))  # one projection shared by the 4 cells

    def forward(self, x, y):
        h = self.net(x)  # (N, 128, 8, 8): each 4x4 quadrant sees one cell
        n, c = h.shape[:2]
        # (N, 4, 128): quadrants summed, in row-major order = CELLS' order (top left, top right, ...)
        cells = h.view(n, c, 2, 4, 2, 4).sum((3, 5)).flatten(2).transpose(1, 2)
        return self.lin(cells.sum(1)).squeeze(1) + (self.embed(y) * cells).sum((1, 2))


def load_scenes(data, num_scenes, seed):
    """The training scenes of `dataset=scenes`: uint8 (N, 3, 32, 32) and layouts (N, 4, 2)."""
    images, labels = load_mnist(data, train=True, download=False)
    return make_scenes(num_scenes, DigitPool(images, labels, SIZE), SIZE, seed, heldout_pairs=True)


def train(args):
    torch.manual_seed(args.seed)
    t_data = time.time()
    x_u8, layouts = load_scenes(args.data, args.num_scenes, args.seed)
    x_all, y_all = x_u8.float() / 127.5 - 1, encode(layouts)
    print(f"{len(x_all)} scenes rendered in {time.time() - t_data:.0f}s; threads {torch.get_num_threads()}",
          flush=True)
    g, d = G(), D()
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.0, 0.9))
    bs, steps, t0, cpu0 = 64, 0, time.time(), time.process_time()

    def more():
        if args.steps is not None:
            return steps < args.steps
        return time.time() - t0 < args.minutes * 60

    while more():
        for _ in range(2):
            idx = torch.randint(len(x_all), (bs,))
            x, y = x_all[idx], y_all[idx]
            with torch.no_grad():
                fake = g(torch.randn(bs, Z), y)
            loss_d = F.relu(1 - d(x, y)).mean() + F.relu(1 + d(fake, y)).mean()
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        # G's labels: layouts of training scenes, so G sees the training distribution of specifications.
        y = y_all[torch.randint(len(y_all), (bs,))]
        loss_g = -d(g(torch.randn(bs, Z), y), y).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        steps += 1
        if steps % args.log_every == 0:
            el, cpu = time.time() - t0, time.process_time() - cpu0  # CPU time shows how shared the cores were
            print(f"step {steps} d {loss_d.item():.3f} g {loss_g.item():.3f} {el:.0f}s (cpu {cpu:.0f}s) "
                  f"{steps / el:.2f} G steps/s", flush=True)
        if args.save_every and steps % args.save_every == 0:  # snapshots to look at while it trains
            torch.save({"G": g.state_dict(), "steps": steps, "seconds": time.time() - t0, "seed": args.seed},
                       f"{args.out}.step{steps}")
    seconds, cpu = time.time() - t0, time.process_time() - cpu0
    blob = {"G": g.state_dict(), "steps": steps, "seconds": seconds, "cpu_seconds": cpu, "seed": args.seed}
    torch.save(blob, args.out)
    print(f"saved {args.out}: {steps} G steps in {seconds:.0f}s, cpu {cpu:.0f}s "
          f"({steps / seconds:.2f} G steps/s)")


def load_generator(path):
    blob = torch.load(path, weights_only=True)
    g = G()
    g.load_state_dict(blob["G"])
    return g.eval(), blob


def layout_sampler(g, seed=0, batch=500):
    """`sample(prompts) -> uint8 (N, 3, 32, 32)` from each prompt's full specification `p.layout`."""
    gen = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def sample(prompts):
        y = encode(torch.stack([p.layout for p in prompts]))
        out = []
        for yb in y.split(batch):
            x = g(torch.randn(len(yb), Z, generator=gen), yb)
            out.append(((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
        return torch.cat(out)

    return sample


def save_grid(g, path, seed=0, per_row=8):
    """A PNG: one row per evaluation category (training-phrasing prompts), 8 samples of 8 specifications."""
    from torchvision.utils import save_image

    from src.metrics.scene_prompts import CATEGORIES, category_prompts

    prompts = [p for cat in CATEGORIES for p in category_prompts(cat, per_row, seed)]
    x = layout_sampler(g, seed)(prompts)
    save_image(x.float() / 255, path, nrow=per_row, padding=2, pad_value=0.5)
    return [f"{p.category}: {p.text} | layout {p.layout.tolist()}" for p in prompts]


def evaluate(args):
    from src.metrics.scene_eval import evaluate_generator, scene_table

    g, blob = load_generator(args.evaluate)
    print(
        f"evaluating {args.evaluate} ({blob['steps']} G steps, {blob['seconds']:.0f}s): the peer reads each "
        "prompt's layout, never its text, so heldout_phrasing=False (phrasing means nothing to it)",
        flush=True,
    )
    t0 = time.time()
    result = evaluate_generator(
        layout_sampler(g, args.seed),
        data_dir=args.data,
        cache_dir=args.cache,
        image_size=SIZE,
        num_samples=args.samples,
        seed=args.seed,
        heldout_phrasing=False,
        progress=True,
    )
    result = dict(result, peer={"g_steps": blob["steps"], "train_seconds": blob["seconds"],
                                "eval_seconds": time.time() - t0, "reads": "layout (no text)"})
    text = json.dumps(result, indent=2, default=float)
    Path(args.json).write_text(text)
    print(text)
    print("peer (reads the layout, no text; held-out phrasing not applicable):")
    print(scene_table(result), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--minutes", type=float, default=20.0, help="wall-clock budget (ignored with --steps)")
    ap.add_argument("--steps", type=int, default=None, help="train for this many G steps instead")
    ap.add_argument("--num-scenes", type=int, default=50000, help="as dataset.num_scenes")
    ap.add_argument("--out", default="scenes_peer.pt")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=250)
    ap.add_argument("--save-every", type=int, default=0, help="also save G every N steps to <out>.step<N>")
    ap.add_argument("--evaluate", metavar="G.pt", help="score a saved generator instead of training")
    ap.add_argument("--grid", metavar="PNG", help="with --evaluate: only save a sample grid")
    ap.add_argument("--cache", default=str(ROOT / "data" / "pixelgan_cache"))
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--json", default="scenes_peer.json")
    args = ap.parse_args()
    if args.evaluate and args.grid:
        for line in save_grid(load_generator(args.evaluate)[0], args.grid, args.seed):
            print(line)
    elif args.evaluate:
        evaluate(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
