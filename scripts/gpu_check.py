"""`make gpu-check`: the GPU paths a CPU test cannot reach, in one table (under ~8 minutes on one GPU).

GPU-marked tests; a short training per precision x loss; gradient clipping (fused Adam) and adaptive
n_critic under bf16 and fp16; `src.bench` with bf16 + torch.compile. Exits non-zero if any row failed.

    python scripts/gpu_check.py [--steps 100]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
LOSSES = ("hinge", "bce", "lsgan", "wgangp")


def run(name: str, cmd: list[str], rows: list[tuple[str, str, float, str]], timeout: int = 300) -> str:
    """Run one check; append (name, ok/FAIL, seconds, last line of output) to rows."""
    t0 = time.time()
    try:
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        ok, out = res.returncode == 0, (res.stdout + res.stderr).strip()
    except subprocess.TimeoutExpired:
        ok, out = False, f"timed out after {timeout} s"
    last = out.splitlines()[-1][:90] if out else ""
    rows.append((name, "ok" if ok else "FAIL", time.time() - t0, last))
    print(f"{name:<34} {'ok' if ok else 'FAIL':<5} {time.time() - t0:6.1f}s  {last}", flush=True)
    return out


def train(out: Path, name: str, *overrides: str) -> list[str]:
    """`python -m src.train` on the embedded digits for a short GPU run."""
    return [
        sys.executable,
        "-m",
        "src.train",
        "trainer=gpu",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={out / name}",
        "~callbacks.evaluation",
        *overrides,
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("error: gpu-check needs a CUDA GPU (none visible)")
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    rows: list[tuple[str, str, float, str]] = []
    out = Path(tempfile.mkdtemp(prefix="pixelgan_gpu_check_"))
    run("pytest -m gpu", [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider"], rows)
    trainings = {
        f"train {loss} {prec}": [f"loss={loss}", f"trainer.precision={prec}"]
        for prec in PRECISIONS
        for loss in LOSSES
    }
    for prec in ("bf16-mixed", "16-mixed"):
        trainings[f"grad clip fused {prec}"] = [f"trainer.precision={prec}", "loss.grad_clip=1.0"]
        trainings[f"adaptive n_critic {prec}"] = [
            f"trainer.precision={prec}",
            "tuner=adaptive_critic",
            "loss.n_critic=3",
            "tuner.critic.interval=5",
        ]
    for name, overrides in trainings.items():
        run(name, train(out, name.replace(" ", "_"), *overrides, f"trainer.max_steps={args.steps}"), rows)
    bench = run(
        "bench bf16 + compile",
        [
            sys.executable,
            "-m",
            "src.bench",
            "trainer=gpu",
            "trainer.precision=bf16-mixed",
            "model.compile=true",
            "bench.repeats=3",
            "bench.steps=100",
            "bench.warmup=20",
            f"hydra.run.dir={out / 'bench'}",
        ],
        rows,
        timeout=420,
    )
    print("\nPixelGAN gpu-check")
    print(f"{'check':<34} {'result':<6} {'seconds':>8}  last line")
    for name, ok, secs, last in rows:
        print(f"{name:<34} {ok:<6} {secs:8.1f}  {last}")
    print("\n".join(line for line in bench.splitlines() if line.startswith(("bare", "lightning", "ratio"))))
    failed = [r[0] for r in rows if r[1] != "ok"]
    print(f"\n{len(rows) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
