"""One-change-at-a-time ablations: train every variant of a recipe, score each with `src.evaluate`, one table.

    python experiments/ablate.py --variants experiments/ablations/mnist.yaml --steps 2000 --parallel 1

Each variant is a list of Hydra overrides on top of `experiment=<recipe>`; runs go to `<out>/<name>/`,
scores to `<out>/ablation.json`, and the Markdown table to stdout (and `<out>/ablation.md`). `--parallel`
runs several variants at once (a GPU machine has room for many of these small models).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runs import train_cmd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("cond_acc", "heldout_cond_acc", "cfid", "heldout_cfid", "precision", "recall")


def run_variant(name: str, overrides: list[str], args: argparse.Namespace) -> dict:
    """Train + evaluate one variant; returns its metrics (or the error) with wall times."""
    out = Path(args.out) / name
    budget = (
        [f"trainer.max_steps={args.steps}", "trainer.max_time=null"]
        if args.steps
        else [f"trainer.max_time=00:00:{args.minutes:02d}:00"]
    )
    seed = [] if any(o.startswith("seed=") for o in overrides) else [f"seed={args.seed}"]
    train = train_cmd(
        args.recipe, args.data, args.cache, out, "~callbacks.evaluation", *seed, *budget, *overrides
    )
    evaluate = [
        sys.executable,
        "-m",
        "src.evaluate",
        f"ckpt_path={out}/checkpoints/last.ckpt",
        "inception=false",
        f"num_samples={args.samples}",
        f"paths.data_dir={args.data}",
        f"paths.cache_dir={args.cache}",
        f"hydra.run.dir={out}/eval",
        f"device={args.device}",
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    row: dict = {"name": name, "overrides": overrides}
    t0 = time.time()
    with open(Path(args.out) / f"{name}.log", "w") as log:
        done = subprocess.run(train, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        row["train_s"] = round(time.time() - t0, 1)
        if done.returncode == 0:
            t1 = time.time()
            done = subprocess.run(evaluate, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
            row["eval_s"] = round(time.time() - t1, 1)
    metrics = out / "eval" / "metrics.json"
    if done.returncode != 0 or not metrics.is_file():
        row["error"] = f"exit {done.returncode}, see {name}.log"
        return row
    row.update(json.loads(metrics.read_text()))
    # Each finished variant is appended at once, so an interrupted batch keeps what it measured.
    with open(Path(args.out) / "ablation.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    return row


def table(rows: list[dict]) -> str:
    """Markdown table: one row per variant, the recipe's row first, deltas of cond. acc. against it."""
    head = "| variant | overrides | G steps | train s | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|" + "---|" * (4 + len(COLUMNS))]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | {' '.join(r['overrides'])} | - | {r['train_s']} | {r['error']} |")
            continue
        vals = " | ".join(f"{r[c]:.3f}" if isinstance(r.get(c), float) else "-" for c in COLUMNS)
        over = " ".join(r["overrides"]) or "-"
        lines.append(f"| {r['name']} | {over} | {r.get('gan_step', '-')} | {r['train_s']} | {vals} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default=str(ROOT / "experiments" / "ablations" / "mnist.yaml"))
    ap.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    ap.add_argument("--recipe", default="mnist")
    ap.add_argument("--steps", type=int, default=2000, help="G steps per run (0: use --minutes)")
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads per run")
    ap.add_argument("--device", default="cpu", help="where src.evaluate samples (cpu or cuda)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--cache", default=str(ROOT / "data" / "pixelgan_cache"))
    ap.add_argument("--out", default=str(ROOT / "logs" / "ablate" / time.strftime("%Y%m%d_%H%M%S")))
    args = ap.parse_args()
    variants = yaml.safe_load(Path(args.variants).read_text())
    if args.only:
        unknown = set(args.only) - set(variants)
        if unknown:
            sys.exit(f"unknown variants {sorted(unknown)}; known: {sorted(variants)}")
        variants = {k: v for k, v in variants.items() if k in args.only}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.parallel) as pool:
        rows = list(pool.map(lambda kv: run_variant(kv[0], kv[1] or [], args), variants.items()))
    (Path(args.out) / "ablation.json").write_text(json.dumps(rows, indent=2))
    text = table(rows)
    (Path(args.out) / "ablation.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
