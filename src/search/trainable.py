"""One Ray Tune trial: the run config with the trial's hyper-parameters, `train(cfg)`, reports to Ray.

A trial that PBT made copy another's weights starts again here with a checkpoint: it resumes from it
through the project's own exact resume, sets the perturbed learning rates in the restored optimizers and
extends the schedule that came with the weights.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import open_dict
from ray import tune

from src.search.overrides import add_callback, apply_lrs, with_params
from src.search.report import CKPT_FILE, SCHEDULE_FILE, STEP_FILE
from src.training import train
from src.tuner.recorded import Segment, extend, read_schedule, write_schedule
from src.utils.cli import silence_known_noise


def _resume_point(run_dir: Path) -> tuple[str | None, int, list[Segment]]:
    """Copy the checkpoint Ray hands this trial (its own, or the one PBT exploited) into the run folder;
    return (its path, its G step, the schedule its weights followed)."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None, 0, []
    # The folder's own checkpoints predate the weights now handed over (PBT may have copied another
    # trial's): a rollback or best.ckpt must never reach back to them.
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    local = run_dir / "checkpoints" / "resumed_from.ckpt"
    local.parent.mkdir(parents=True, exist_ok=True)
    with checkpoint.as_directory() as folder:
        shutil.copyfile(Path(folder) / CKPT_FILE, local)
        step = int(json.loads((Path(folder) / STEP_FILE).read_text())["gan_step"])
        segments, _ = read_schedule(Path(folder) / SCHEDULE_FILE)
    return str(local), step, segments


def run_trial(
    config: dict[str, Any], *, base: dict[str, Any], metric: str, mode: str, report_every: int
) -> None:
    """Ray Tune function trainable: train one trial of `base` with `config` ({"loss.lr_g": ...})."""
    # A trial is a fresh Ray worker process: it hides the same third-party noise `python -m src.train` does.
    silence_known_noise()
    context = tune.get_context()
    # Trials side by side share the machine: each uses the CPUs it was given, not all of them.
    torch.set_num_threads(max(1, int(context.get_trial_resources().required_resources.get("CPU", 1))))
    cfg = with_params(base, config)
    run_dir = Path(context.get_trial_dir()) / "run"
    ckpt_path, start, segments = _resume_point(run_dir)
    schedule = run_dir / SCHEDULE_FILE
    write_schedule(
        schedule,
        extend(segments, start, config),
        metric=metric,
        mode=mode,
        max_steps=int(cfg.trainer.max_steps),
        trial=context.get_trial_name(),
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.ckpt_path = ckpt_path
    apply_lrs(cfg)
    add_callback(
        cfg,
        "tune_report",
        {
            "_target_": "src.search.report.TuneReport",
            "metric": metric,
            "mode": mode,
            "every_n_steps": report_every,
            "params": dict(config),
            "schedule_path": str(schedule),
        },
    )
    train(cfg)
