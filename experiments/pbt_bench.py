"""Population-based training vs random search vs Optuna + ASHA vs the fixed recipe, at equal compute.

Each search gets `--population` trials of `--steps` G steps on MNIST (ASHA stops some early and so spends
less; the table counts the G steps really trained); the fixed recipe trains one run of the defaults for
the same total (population x steps G steps, on all the machine's threads). Every method's winner (best
in-training objective) is then scored by `src.evaluate` on `--samples` samples.
Prints one table and writes `<out>/pbt_bench.json`.

    python experiments/pbt_bench.py --data ../shared/data --population 4 --steps 3500 --samples 10000

Needs the `tune` extra. Give it the machine alone: trials run side by side (`--cpus-per-trial`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.callbacks.evaluation import weighted_score  # noqa: E402

METHODS = ("fixed", "random", "optuna", "pbt")
# Keys of conf/search/space/gan.yaml that change what a G step costs several-fold (a batch of 128, 3 critic
# steps): without them equal G steps are nearly equal compute. Not quite: mode-seeking > 0 sends half a
# batch more through G than mode-seeking 0 does, and matching-aware > 0 adds one cheap D head pass.
UNEQUAL_COST = ["~search.space.dataset", "~search.space.loss.n_critic", "~search.space.tuner"]
SHOWN = ("cond_acc", "heldout_cond_acc", "cfid", "precision", "recall", "score")
# The weighted score of the project's goals that `src.tune` optimises by default (conf/tune.yaml):
# the fixed recipe's run (src.train) logs it with the same weights.
GOALS = OmegaConf.load(ROOT / "conf" / "tune.yaml").callbacks.evaluation


def run(cmd: list[str], log: Path) -> float:
    """Run a command from the repository root, output to `log`; its wall time in seconds."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with open(log, "w") as f:
        subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=True)
    return time.time() - t0


def common(args: argparse.Namespace) -> list[str]:
    """Overrides every method shares: data, metric and its evaluation interval, CSV logs."""
    return [
        "dataset=mnist",
        f"paths.data_dir={args.data}",
        f"paths.cache_dir={args.cache}",
        f"optimized_metric={args.metric}",
        f"callbacks.evaluation.monitor={args.metric}",
        f"callbacks.evaluation.mode={args.mode}",
        f"callbacks.evaluation.every_n_steps={args.interval}",
        "callbacks.evaluation.score={" + ",".join(f"{k}:{w}" for k, w in GOALS.score.items()) + "}",
        f"callbacks.evaluation.score_offset={GOALS.score_offset}",
        "logger=csv",
        "trainer.enable_progress_bar=false",
    ]


def fixed(args: argparse.Namespace, out: Path) -> tuple[Path, float, int]:
    """The recipe trained once for the whole budget (population x steps G steps): the same total time."""
    steps = args.population * args.steps
    run_dir = out / "run"
    cmd = [sys.executable, "-m", "src.train", *common(args), f"seed={args.seed}"]
    cmd += [f"trainer.max_steps={steps}", f"hydra.run.dir={run_dir}"]
    seconds = run(cmd, out / "fixed.log")
    return run_dir / "checkpoints" / "last.ckpt", seconds, steps


def search(args: argparse.Namespace, method: str, out: Path) -> tuple[Path, float, int]:
    """One `src.tune` experiment; the winner's last checkpoint and the G steps all trials trained."""
    cmd = [
        sys.executable,
        "-m",
        "src.tune",
        *common(args),
        f"search={method}",
        f"tune.population={args.population}",
        f"tune.budget={args.steps}",
        f"tune.mode={args.mode}",
        f"tune.storage_path={out}",
        f"tune.name={method}",
        f"tune.num_cpus={args.cpus}",
        f"tune.resources_per_trial.cpu={args.cpus_per_trial}",
        f"tune.start={args.start}",
        f"seed={args.seed}",
        f"hydra.run.dir={out}/{method}_hydra",
    ]
    if not args.full_space:
        cmd += UNEQUAL_COST
    if method == "pbt":
        cmd.append(f"search.scheduler.perturbation_interval={args.interval}")
    if method == "optuna":
        cmd.append(f"search.scheduler.grace_period={args.interval}")
    seconds = run(cmd, out / f"{method}.log")
    summary = json.loads((out / method / "results.json").read_text())
    steps = sum(int(t["gan_step"] or 0) for t in summary["trials"])
    return Path(summary["best_checkpoint"]), seconds, steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--cache", default=str(ROOT / "data" / "pixelgan_cache"))
    ap.add_argument("--population", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3500, help="G steps per trial (and per fixed-recipe seed)")
    ap.add_argument("--interval", type=int, default=500, help="G steps between evaluations / PBT decisions")
    ap.add_argument("--metric", default="eval/score", help="eval/score: the goals' weighted score")
    ap.add_argument("--mode", default="min")
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0, help="seed of every run (fixed, trials, draws)")
    ap.add_argument("--cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    ap.add_argument("--cpus-per-trial", type=float, default=1.0, help="0.5 runs 4 trials on 2 CPUs at once")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument(
        "--start", default="random", choices=("random", "recipe"), help="recipe: start around the defaults"
    )
    ap.add_argument(
        "--full-space", action="store_true", help="also vary batch size, n_critic and the ADA target"
    )
    ap.add_argument("--out", default=str(ROOT / "logs" / "pbt_bench" / time.strftime("%Y%m%d_%H%M%S")))
    args = ap.parse_args()
    out = Path(args.out).resolve()
    args.cpus = args.cpus if args.cpus is not None else "null"
    table = {}
    for method in args.methods.split(","):
        ckpt, seconds, steps = fixed(args, out / "fixed") if method == "fixed" else search(args, method, out)
        eval_dir = out / f"{method}_eval"
        run(
            [
                sys.executable,
                "-m",
                "src.evaluate",
                f"ckpt_path={ckpt}",
                f"num_samples={args.samples}",
                "inception=false",
                f"paths.data_dir={args.data}",
                f"paths.cache_dir={args.cache}",
                f"hydra.run.dir={eval_dir}",
            ],
            out / f"{method}_eval.log",
        )
        metrics = json.loads((eval_dir / "metrics.json").read_text())
        scored = {f"eval/{k}": v for k, v in metrics.items() if isinstance(v, int | float)}
        metrics["score"] = weighted_score(scored, dict(GOALS.score), GOALS.score_offset)
        table[method] = {
            "minutes": round(seconds / 60, 1),
            "g_steps": steps,
            "ckpt": str(ckpt),
            **{k: metrics.get(k) for k in SHOWN},
        }
        (out / "pbt_bench.json").write_text(json.dumps(table, indent=2) + "\n")
    print("| method | G steps | minutes | " + " | ".join(SHOWN) + " |")
    print("|---" * (3 + len(SHOWN)) + "|")
    for method, row in table.items():
        cells = [f"{row[k]:.4f}" if isinstance(row[k], float) else str(row[k]) for k in SHOWN]
        print(f"| {method} | {row['g_steps']} | {row['minutes']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
