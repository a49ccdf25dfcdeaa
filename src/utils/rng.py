"""Per-rank random streams: a seed per rank, and every rank's RNG state saved and restored on resume."""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
import torch.distributed as dist
from lightning.fabric.plugins.environments import (
    LSFEnvironment,
    MPIEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)
from lightning.fabric.utilities.seed import seed_everything


def global_rank(devices_per_node: int | None = None) -> int:
    """This process's global rank, from the process group or what the launcher set; 0 for one process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    # Lightning's own order (torchrun first: it also runs inside SLURM), then a generic RANK, then
    # Lightning's launcher, whose rank-0 process has nothing set before `trainer.fit`: it is rank 0.
    for env in (TorchElasticEnvironment, SLURMEnvironment, LSFEnvironment, MPIEnvironment):
        if env.detect():
            return env().global_rank()
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", 0)))
    local = int(os.environ.get("LOCAL_RANK", 0))
    if node == 0:
        return local
    if devices_per_node is None:
        # Lightning does not export its devices per node; every GPU a node shows bounds its local ranks,
        # so the rank this gives is unique even when it is not Lightning's number.
        devices_per_node = int(os.environ.get("LOCAL_WORLD_SIZE", 0)) or torch.cuda.device_count() or 1
    return node * devices_per_node + local


def seed_rank(seed: int, devices_per_node: int | None = None) -> int:
    """Seed Python, NumPy and torch with seed + global rank, so ranks draw different noise; returns it."""
    # Data order is unaffected: the data module seeds its own generators from the config seed.
    return seed_everything(seed + global_rank(devices_per_node), workers=True)


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_rng_state() -> dict[str, torch.Tensor]:
    """This process's torch CPU RNG state, and its current CUDA device's once CUDA is in use."""
    state = {"torch": torch.get_rng_state()}
    # Only the device this rank trains on: querying every device would open a context on each of them.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def gather_rng_states() -> list[dict[str, torch.Tensor]]:
    """Every rank's `local_rng_state()`, indexed by global rank, on every rank (a collective under DDP)."""
    _, world = _world()
    if world == 1:
        return [local_rng_state()]
    states: list[Any] = [None] * world
    dist.all_gather_object(states, local_rng_state())
    return states


def _set_cuda_state(cuda: torch.Tensor | list[torch.Tensor]) -> None:
    if not torch.cuda.is_available():
        return
    if isinstance(cuda, list):  # checkpoints written before per-rank states: one state per visible GPU
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        return
    torch.cuda.set_rng_state(cuda)


def restore_rng_state(states: list[dict[str, Any]] | dict[str, Any]) -> None:
    """Restore this rank's entry of `gather_rng_states()`; a bare dict is an older single-state checkpoint."""
    if isinstance(states, dict):
        states = [states]
    rank, world = _world()
    if len(states) == world:
        torch.set_rng_state(states[rank]["torch"])
        if "cuda" in states[rank]:
            _set_cuda_state(states[rank]["cuda"])
        return
    # Another world size: the saved streams cannot be shared out. Reseed from a number drawn from rank 0's
    # saved state, plus the rank, so the resumed run is still repeatable and ranks still differ.
    if rank == 0:
        warnings.warn(
            f"checkpoint holds the RNG states of {len(states)} rank(s), this run has {world}: "
            "reseeding each rank from the saved state instead of restoring it",
            stacklevel=2,
        )
    g = torch.Generator().set_state(states[0]["torch"])
    base = int(torch.randint(2**31, (), generator=g))
    torch.manual_seed(base + rank)
    if torch.cuda.is_available():
        torch.cuda.manual_seed(base + rank)
