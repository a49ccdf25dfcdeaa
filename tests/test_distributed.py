"""DDP correctness on CPU: a seed per rank, tuner statistics summed over ranks, each rank's RNG resumed.

The two-rank tests run one 2-process gloo group (torch.multiprocessing) that plays every scenario and
saves what each rank saw; the tests then compare the ranks' numbers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from src.tuner.augment import AdaController, Augment
from src.tuner.critic import AdaptiveCritic
from src.utils.rng import gather_rng_states, global_rank, restore_rng_state, seed_rank

# Everything a launcher may set: cleared so the machine's own environment cannot leak into a test.
LAUNCH_VARS = (
    "RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "LOCAL_WORLD_SIZE", "WORLD_SIZE", "TORCHELASTIC_RUN_ID",
    "SLURM_NTASKS", "SLURM_NTASKS_PER_NODE", "SLURM_PROCID", "SLURM_JOB_NAME", "LSB_JOBID",
)  # fmt: skip


@pytest.fixture
def launch_env(monkeypatch):
    """A single-process environment; tests add the launcher's variables. PL_* are put back afterwards."""
    for var in LAUNCH_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")
    monkeypatch.setenv("PL_SEED_WORKERS", "0")
    return monkeypatch


@pytest.mark.parametrize(
    ("env", "rank"),
    [
        ({}, 0),
        ({"LOCAL_RANK": "1", "NODE_RANK": "0", "WORLD_SIZE": "2"}, 1),  # a child of Lightning's launcher
        ({"LOCAL_RANK": "1", "NODE_RANK": "1", "LOCAL_WORLD_SIZE": "4"}, 5),
        ({"TORCHELASTIC_RUN_ID": "x", "RANK": "3", "LOCAL_RANK": "1", "GROUP_RANK": "1"}, 3),
        ({"SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "4", "SLURM_PROCID": "2", "SLURM_JOB_NAME": "t"}, 2),
        # An interactive SLURM shell: Lightning spawns the ranks itself; SLURM_PROCID is 0 in all of them.
        ({"SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_JOB_NAME": "bash", "LOCAL_RANK": "1"}, 1),
    ],
)
def test_global_rank_from_each_launcher(launch_env, env, rank):
    for key, value in env.items():
        launch_env.setenv(key, value)
    assert global_rank() == rank
    assert seed_rank(10) == 10 + rank and torch.initial_seed() == 10 + rank


def test_node_rank_needs_devices_per_node(launch_env):
    launch_env.setenv("NODE_RANK", "2")
    launch_env.setenv("LOCAL_RANK", "1")
    assert global_rank(devices_per_node=3) == 7


def test_prepare_seeds_each_rank_apart_but_keeps_the_data_order(launch_env, tiny_cfg):
    from src.training import prepare

    first = prepare(tiny_cfg(sub="rank0"))
    assert torch.initial_seed() == first.cfg.seed
    launch_env.setenv("LOCAL_RANK", "1")  # what Lightning's launcher gives its second process
    second = prepare(tiny_cfg(sub="rank1"))
    assert torch.initial_seed() == second.cfg.seed + 1
    a, b = (next(iter(r.datamodule.train_dataloader())) for r in (first, second))
    assert torch.equal(a["images"], b["images"]) and torch.equal(a["caption_ids"], b["caption_ids"])


def test_rng_states_single_process_round_trip():
    torch.manual_seed(3)
    states = gather_rng_states()
    assert len(states) == 1 and torch.equal(states[0]["torch"], torch.get_rng_state())
    assert "cuda" not in states[0] or torch.cuda.is_initialized()
    expected = torch.rand(3)
    torch.rand(5)
    restore_rng_state(states)
    assert torch.equal(torch.rand(3), expected)
    restore_rng_state({"torch": states[0]["torch"]})  # a checkpoint from before per-rank states
    assert torch.equal(torch.rand(3), expected)


def test_rng_restore_after_a_world_size_change_warns_and_reseeds_repeatably():
    torch.manual_seed(0)
    saved = [gather_rng_states()[0], gather_rng_states()[0]]
    continued = torch.rand(3)
    with pytest.warns(UserWarning, match="2 rank"):
        restore_rng_state(saved)
    first = torch.rand(3)
    with pytest.warns(UserWarning):
        restore_rng_state(saved)
    assert torch.equal(torch.rand(3), first) and not torch.equal(first, continued)


# --- two ranks -------------------------------------------------------------------------------------
def _ada(rank: int) -> dict[str, Any]:
    """Rank 0 sees 16 reals all scored positive, rank 1 48 reals of which 12 positive."""
    d_real = torch.full((16,), 3.0) if rank == 0 else torch.tensor([1.0] * 12 + [-1.0] * 36)
    aug, ada = Augment(p=0.5), AdaController(target=0.0, interval=2, speed_kimg=1.0)
    ada.accumulate(d_real)
    updated_early = ada.maybe_update(aug, 1, 32)
    mid = (ada.sign_sum.item(), ada.count.item())  # what a checkpoint written now would hold
    ada.accumulate(d_real)
    updated = ada.maybe_update(aug, 2, 32)
    return {"updated": (updated_early, updated), "mid": mid, "r_t": ada.r_t.item(), "p": aug.p.item()}


def _critic(rank: int) -> list[int]:
    """Rank 0's D separates perfectly (1.0); rank 1's at 0.5, then 0.75."""
    perfect = (torch.ones(2), -torch.ones(2))
    half = torch.tensor([1.0, -1.0])
    lower = [(half, half), (torch.ones(2), half)]
    ctl = AdaptiveCritic(target=0.75, margin=0.1, interval=2)
    ctl.n_active.fill_(3)
    seen = []
    for step in range(1, 5):
        ctl.accumulate(*(perfect if rank == 0 else lower[(step - 1) // 2]))
        if ctl.maybe_update(step, 5):
            seen.append(ctl.active(5))
    return seen


def _rng(rank: int, out: Path) -> dict[str, Any]:
    """Seed per rank, save every rank's state as a checkpoint would, scramble, restore from the file."""
    seed = seed_rank(7)
    torch.rand(2)
    states = gather_rng_states()
    mine = torch.equal(states[rank]["torch"], torch.get_rng_state())
    if rank == 0:
        torch.save({"pixelgan_rng": states}, out / "rng.ckpt")
    dist.barrier()
    expected = torch.rand(4)
    torch.manual_seed(12345)
    restore_rng_state(torch.load(out / "rng.ckpt", weights_only=True)["pixelgan_rng"])
    got = torch.rand(4)
    restore_rng_state(states + states[:1])  # three saved ranks, two now: reseeded
    reseeded = torch.rand(2)
    restore_rng_state(states + states[:1])
    again = torch.rand(2)
    return {
        "seed": seed,
        "mine": mine,
        "states": states,
        "expected": expected,
        "got": got,
        "reseeded": (reseeded, again),
    }


def _worker(rank: int, world: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out}/pg", rank=rank, world_size=world)
    try:
        result = {"ada": _ada(rank), "critic": _critic(rank), "rng": _rng(rank, Path(out))}
        torch.save(result, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict[str, Any]]:
    """What each of two gloo ranks saw; fails instead of hanging if a collective deadlocks."""
    out = tmp_path_factory.mktemp("ddp")
    # fork: the ranks inherit this process's imports (0.3 s, not 25 s to re-import torch and Lightning);
    # they run on one thread each and never touch CUDA, the two things fork does not carry over.
    ctx = mp.start_processes(_worker, args=(2, str(out)), nprocs=2, join=False, start_method="fork")
    deadline = time.monotonic() + 240
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("2-rank gloo group did not finish in 240 s")
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


def test_ada_decides_on_all_ranks_reals(ranks):
    # r_t over all 64 reals per step: (16 - 24) / 64; alone rank 0 would raise p (r_t = 1), rank 1 lower it.
    for seen in ranks:
        assert seen["ada"]["updated"] == (False, True)
        assert seen["ada"]["mid"] == (-8.0, 64.0)  # mid-interval buffers hold both ranks' totals
        assert seen["ada"]["r_t"] == pytest.approx(-0.125)
        # images of both ranks: 32 per step x 2 ranks x interval 2, per 1 kimg.
        assert seen["ada"]["p"] == pytest.approx(0.5 - 128 / 1000)


def test_adaptive_critic_decides_on_all_ranks_accuracy(ranks):
    # Mean accuracy (1.0 + 0.5) / 2 = 0.75 keeps 3 slots, then (1.0 + 0.75) / 2 = 0.875 > 0.85 drops one.
    # Alone, rank 0 would go 3 -> 2 -> 1 and rank 1 3 -> 4 -> 4.
    assert ranks[0]["critic"] == ranks[1]["critic"] == [3, 2]


def test_each_rank_resumes_its_own_rng_stream(ranks):
    r0, r1 = ranks[0]["rng"], ranks[1]["rng"]
    assert (r0["seed"], r1["seed"]) == (7, 8) and r0["mine"] and r1["mine"]
    for a, b in zip(r0["states"], r1["states"]):  # all ranks' states gathered to every rank
        assert torch.equal(a["torch"], b["torch"])
    assert not torch.equal(r0["expected"], r1["expected"])  # ranks draw different noise
    assert torch.equal(r0["got"], r0["expected"]) and torch.equal(r1["got"], r1["expected"])
    assert torch.equal(*r0["reseeded"]) and torch.equal(*r1["reseeded"])  # reseeding is repeatable
    assert not torch.equal(r0["reseeded"][0], r1["reseeded"][0])  # and still one stream per rank
