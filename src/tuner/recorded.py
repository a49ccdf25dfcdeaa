"""Recorded hyper-parameter schedules (a population-based search's record per trial) and the callback that
sets a resumed run's learning rates to its segment's."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

# A schedule is the list of (first G step, {config key: value}) segments one run's weights trained under;
# `python -m src.tune replay=<schedule.json>` trains them again, resuming at each change point.


@dataclass(frozen=True)
class Segment:
    """From G step `start` on (until the next segment), the run trains with `params` ({"loss.lr_g": ...})."""

    start: int
    params: dict[str, Any]


def extend(segments: list[Segment], start: int, params: dict[str, Any]) -> list[Segment]:
    """The schedule of weights resumed at G step `start` (from `segments`' run) with `params` from then on."""
    kept = [s for s in segments if s.start < start]
    if kept and kept[-1].params == params:
        return kept
    return [*kept, Segment(start, dict(params))]


def write_schedule(path: str | Path, segments: list[Segment], **meta: Any) -> None:
    """JSON {**meta, "segments": [{"start": s, "params": {...}}, ...]}, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {**meta, "segments": [{"start": s.start, "params": s.params} for s in segments]}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_schedule(path: str | Path) -> tuple[list[Segment], dict[str, Any]]:
    """(segments sorted by start, the other fields) of a schedule file written by `write_schedule`."""
    body = json.loads(Path(path).read_text())
    segments = sorted((Segment(int(s["start"]), dict(s["params"])) for s in body["segments"]), key=_start)
    if not segments or segments[0].start != 0:
        raise ValueError(f"{path}: a schedule's first segment must start at G step 0")
    return segments, {k: v for k, v in body.items() if k != "segments"}


def _start(segment: Segment) -> int:
    return segment.start


class ApplyLearningRates(Callback):
    """Sets G's and D's learning rates to the config's once training starts: a resumed checkpoint brings its
    optimizers' own lrs, which a perturbed or replayed schedule must replace."""

    def __init__(self, lr_g: float, lr_d: float) -> None:
        super().__init__()
        self.lr_g, self.lr_d = float(lr_g), float(lr_d)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning restores optimizer and scheduler states before this hook; the module builds G's first.
        schedulers = {id(c.scheduler.optimizer): c.scheduler for c in trainer.lr_scheduler_configs}
        for opt, lr in zip(trainer.optimizers, (self.lr_g, self.lr_d)):
            sched = schedulers.get(id(opt))
            for i, group in enumerate(opt.param_groups):
                factor = 1.0
                if sched is not None:
                    # An lr schedule multiplies its base lr: move the base, keep the schedule's position.
                    sched.base_lrs[i] = lr
                    group["initial_lr"] = lr
                    lambdas = getattr(sched, "lr_lambdas", None)
                    factor = lambdas[i](sched.last_epoch) if lambdas else 1.0
                group["lr"] = lr * factor
