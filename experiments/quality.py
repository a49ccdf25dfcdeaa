"""`make quality`: PixelGAN's MNIST recipe vs a hand-written SNGAN baseline at equal CPU wall-clock time,
both scored by PixelGAN's own evaluation on the same number of samples. Prints one table and writes
`<out>/quality.json` and `experiments/quality_results.md`.

    python experiments/quality.py --data ../shared/data --minutes 10 --samples 10000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hydra.utils import instantiate  # noqa: E402

from src.metrics.evaluator import EvalSettings, evaluator_for  # noqa: E402
from src.models.factory import load_module  # noqa: E402

sys.path.insert(0, str(ROOT / "experiments"))
from runs import train_cmd  # noqa: E402


class LabelConditioned:
    """Adapts the baseline's G(z, label) to the evaluator's `generate(prompts, z)` (prompt -> its class)."""

    def __init__(self, g: torch.nn.Module, spec) -> None:
        self.G, self.spec = g.eval(), spec

    @torch.no_grad()
    def generate(self, prompts: list[str], z: torch.Tensor) -> torch.Tensor:
        labels = torch.tensor([self.spec.label_of(p) for p in prompts])
        return self.G(z, labels)


def run(cmd: list[str], log: Path) -> float:
    t0 = time.time()
    with open(log, "w") as f:
        subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=True)
    return time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--cache", default=str(ROOT / "data" / "pixelgan_cache"))
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--out", default=str(ROOT / "logs" / "quality" / time.strftime("%Y%m%d_%H%M%S")))
    ap.add_argument("--recipe", default="mnist", help="conf/experiment/<recipe>.yaml")
    # Seed 0 of the baseline diverged in a 10-minute CPU run here (D loss 0, noise samples); seed 1 trained.
    # The default gives the baseline its seed that works: beating a diverged run would prove nothing.
    ap.add_argument("--baseline-seed", type=int, default=1)
    ap.add_argument("--skip-train", action="store_true", help="re-score the runs already in --out")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    walls = {}
    if not args.skip_train:
        walls["pixelgan"] = run(
            train_cmd(
                args.recipe,
                args.data,
                args.cache,
                out / "pixelgan",
                f"trainer.max_time=00:00:{args.minutes:02d}:00",
            ),
            out / "pixelgan.log",
        )
        walls["baseline"] = run(
            [
                sys.executable,
                "experiments/baselines/sngan_mnist.py",
                "--data",
                args.data,
                "--minutes",
                str(args.minutes),
                "--out",
                str(out / "baseline.pt"),
                "--seed",
                str(args.baseline_seed),
            ],
            out / "baseline.log",
        )

    module, cfg = load_module(out / "pixelgan" / "checkpoints" / "last.ckpt")
    dm = instantiate(cfg.dataset, data_dir=args.data, download=False)
    settings = EvalSettings(num_samples=args.samples, real_samples=10000, heldout=True, inception=False)
    evaluator = evaluator_for(dm, settings, args.cache)
    results = {"pixelgan": evaluator.evaluate(module)}
    spec = importlib.util.spec_from_file_location(
        "sngan", ROOT / "experiments" / "baselines" / "sngan_mnist.py"
    )
    sngan = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sngan)
    blob = torch.load(out / "baseline.pt", weights_only=True)
    g = sngan.G()
    g.load_state_dict(blob["G"])
    evaluator.settings.heldout = False  # label-conditioned: phrasing means nothing to it
    results["baseline"] = evaluator.evaluate(LabelConditioned(g, dm.spec))
    results["baseline"]["g_steps"] = blob["steps"]
    results["pixelgan"]["g_steps"] = module.loaded_gan_step
    results["wall_s"] = walls
    (out / "quality.json").write_text(json.dumps(results, indent=2))
    table = format_table(results, args)
    print(table)
    (ROOT / "experiments" / "quality_results.md").write_text(table + "\n")


def format_table(r: dict, args: argparse.Namespace) -> str:
    p, b = r["pixelgan"], r["baseline"]
    rows = [
        ("G steps in the budget", p["g_steps"], b["g_steps"]),
        ("cond. accuracy (training phrasings)", f"{p['cond_acc']:.4f}", f"{b['cond_acc']:.4f}"),
        ("cond. accuracy (held-out phrasings)", f"{p['heldout_cond_acc']:.4f}", "n/a (labels)"),
        ("classifier-FID", f"{p['cfid']:.2f}", f"{b['cfid']:.2f}"),
        ("classifier-FID (held-out phrasings)", f"{p['heldout_cfid']:.2f}", "n/a"),
        ("precision", f"{p['precision']:.4f}", f"{b['precision']:.4f}"),
        ("recall", f"{p['recall']:.4f}", f"{b['recall']:.4f}"),
    ]
    lines = [
        f"## Quality per CPU-minute: MNIST, {args.minutes} min each, {args.samples} samples",
        "",
        f"`python experiments/quality.py --minutes {args.minutes} --samples {args.samples} "
        f"--baseline-seed {args.baseline_seed}` "
        f"(2 CPU cores); wall s: {r.get('wall_s')}",
        "",
        "| metric | PixelGAN (text prompts) | SNGAN baseline (labels) |",
        "|---|---|---|",
    ]
    lines += [f"| {a} | {x} | {y} |" for a, x, y in rows]
    lines.append(f"| classifier-FID ratio PixelGAN / baseline | {p['cfid'] / b['cfid']:.3f} | |")
    lines += ["", "Goals (issue 8):"] + [
        f"- {name}: {'met' if ok else 'NOT met'}" for name, ok in goals(p, b).items()
    ]
    return "\n".join(lines)


def goals(p: dict, b: dict) -> dict[str, bool]:
    """The issue's bar for PixelGAN's metrics `p` against the baseline's `b`."""
    return {
        f"cond. accuracy >= 0.97 on training phrasings ({p['cond_acc']:.4f})": p["cond_acc"] >= 0.97,
        f"cond. accuracy >= 0.97 on held-out phrasings ({p['heldout_cond_acc']:.4f})": p["heldout_cond_acc"]
        >= 0.97,
        f"classifier-FID <= 1/3 of the baseline's ({p['cfid']:.2f} vs {b['cfid']:.2f})": p["cfid"]
        <= b["cfid"] / 3,
        f"recall >= the baseline's ({p['recall']:.4f} vs {b['recall']:.4f})": p["recall"] >= b["recall"],
    }


if __name__ == "__main__":
    main()
