"""Where a checkpoint came from: the command lines Hydra recorded, and the evaluation that scored it."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Where `src.evaluate` writes metrics.json: a folder inside the run (hydra.run.dir=<run>/eval), or its own
# run folders under the log dir (conf/hydra/default.yaml).
METRICS_GLOBS = ("*/metrics.json", "*/*/metrics.json")
EVAL_GLOBS = ("evaluate/runs/*/metrics.json", "evaluate/multiruns/*/*/metrics.json")


@dataclass(frozen=True)
class Evaluation:
    """A metrics.json that scored this checkpoint, with the command and settings that produced it."""

    path: Path
    metrics: dict[str, Any]
    command: str | None
    settings: dict[str, Any]


def recorded_command(run_dir: Path, entry: str) -> str | None:
    """`python -m src.<entry> <overrides>` as Hydra recorded them in `run_dir/.hydra/hydra.yaml`, or None."""
    path = run_dir / ".hydra" / "hydra.yaml"
    try:
        overrides = yaml.safe_load(path.read_text(encoding="utf-8"))["hydra"]["overrides"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None
    # hydra.mode=RUN is Hydra's own bookkeeping, not something the user typed.
    args = [a for a in overrides.get("hydra") or [] if not a.startswith("hydra.mode=")]
    args += list(overrides.get("task") or [])
    return " ".join(["python", "-m", f"src.{entry}", *(shlex.quote(a) for a in args)])


def _same_file(a: Any, b: Path) -> bool:
    try:
        return Path(str(a)).resolve() == b.resolve()
    except (OSError, RuntimeError):
        return False


def find_evaluation(ckpt: Path, gan_step: int, log_dir: Path | None = None) -> Evaluation | None:
    """The newest metrics.json for this checkpoint at this G step: in its run folder or under log_dir."""
    run_dir = ckpt.resolve().parent.parent
    candidates = [p for g in METRICS_GLOBS for p in run_dir.glob(g)]
    if log_dir is not None:
        candidates += [p for g in EVAL_GLOBS for p in Path(log_dir).glob(g)]
    found = []
    for path in set(candidates):
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        # last.ckpt is rewritten as training goes on: only a score of the same G step describes these weights.
        inside_run = run_dir in path.resolve().parents
        if metrics.get("gan_step") == gan_step and (inside_run or _same_file(metrics.get("ckpt_path"), ckpt)):
            found.append((path.stat().st_mtime, path, metrics))
    if not found:
        return None
    _, path, metrics = max(found, key=lambda f: f[0])
    settings: dict[str, Any] = {}
    try:
        settings = yaml.safe_load((path.parent / ".hydra" / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        pass
    return Evaluation(path, metrics, recorded_command(path.parent, "evaluate"), settings)
