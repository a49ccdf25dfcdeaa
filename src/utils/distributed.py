"""DDP helpers: Hydra-safe child launches, statistics summed over ranks, and a check that ranks agree."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def world_size() -> int:
    """Processes in the default process group; 1 when torch.distributed is not initialized."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum `t` over all ranks in place (every rank gets the same total) and return it; as is for one process.

    A collective: under DDP every rank must call it, the same number of times, in the same order.
    """
    if world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


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


def parameter_sums(model: torch.nn.Module) -> tuple[list[str], torch.Tensor]:
    """Names and float64 sums of all parameters (EMA copies included): (P,) per rank.

    Buffers are left out: BatchNorm running statistics are per rank unless trainer.sync_batchnorm is on.
    """
    names, sums = [], []
    with torch.no_grad():
        for name, p in model.named_parameters():
            names.append(name)
            sums.append(p.double().sum())
    return names, torch.stack(sums)


def check_ranks_in_sync(trainer: Any, model: torch.nn.Module, output_dir: str) -> None:
    """Under DDP, all-gather per-parameter sums; rank 0 writes ddp_check.json; raise naming any mismatch."""
    if trainer.world_size <= 1:
        return
    names, local = parameter_sums(model)
    gathered = trainer.strategy.all_gather(local).reshape(trainer.world_size, -1)
    differs = [n for n, col in zip(names, gathered.T) if (col != col[0]).any()]
    if trainer.is_global_zero:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "ddp_check.json").write_text(
            json.dumps(
                {
                    "world_size": trainer.world_size,
                    "checksums": gathered.sum(1).tolist(),
                    "in_sync": not differs,
                    "differing_parameters": differs,
                }
            )
        )
    if differs:
        raise RuntimeError(f"DDP ranks diverged in {len(differs)} parameter(s): {differs[:5]}")
    log.info("parameters identical across %d ranks", trainer.world_size)
