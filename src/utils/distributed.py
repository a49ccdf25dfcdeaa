"""DDP helpers: launching Lightning's DDP children correctly under Hydra, and checking ranks agree."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


def hydra_argv_for_ddp_children() -> None:
    """Inside a Hydra multirun job, make Lightning's DDP children re-run this one job, not the sweep.

    Lightning launches ranks > 0 as `python -m src.train <sys.argv[1:]> hydra.run.dir=<run.dir>`. In a
    sweep, sys.argv holds `-m` and every swept value, and run.dir is not the job's folder: each child would
    start a new sweep in a new folder. Rewriting both to this job's overrides and folder fixes that.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import read_write

    if "LOCAL_RANK" in os.environ or not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN:
        sys.argv = [sys.argv[0], *hc.overrides.task]
        with read_write(hc.run):
            hc.run.dir = hc.runtime.output_dir


def parameter_checksum(model: torch.nn.Module) -> float:
    """Sum of all parameters and buffers in float64: equal across ranks iff (almost surely) in sync."""
    with torch.no_grad():
        return float(
            sum(
                t.double().sum()
                for t in list(model.parameters()) + list(model.buffers())
                if t.is_floating_point()
            )
        )


def check_ranks_in_sync(trainer: Any, model: torch.nn.Module, output_dir: str) -> None:
    """Under DDP, all-gather parameter checksums; rank 0 writes ddp_check.json; raise on mismatch."""
    if trainer.world_size <= 1:
        return
    local = parameter_checksum(model)
    sums = trainer.strategy.all_gather(torch.tensor(local, dtype=torch.float64)).flatten().tolist()
    in_sync = max(sums) - min(sums) == 0.0
    if trainer.is_global_zero:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "ddp_check.json").write_text(
            json.dumps({"world_size": trainer.world_size, "checksums": sums, "in_sync": in_sync})
        )
    if not in_sync:
        raise RuntimeError(f"DDP ranks diverged: parameter checksums {sums}")
    log.info("parameters identical across %d ranks", trainer.world_size)
