"""Ray Tune search (`python -m src.tune`): PBT exploits and perturbs, schedules replay, a NaN trial is
reported while the study goes on, a rerun resumes. Tiny trials on a 2-CPU Ray started here."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from src.tune import require_ray, tune_or_replay
from src.tuner.recorded import Segment, extend, read_schedule, write_schedule
from src.utils.cli import check_overrides
from src.utils.config import ConfigError

from conftest import TINY, compose_cfg

# Four G steps per trial, a report (and a PBT decision) every two.
TUNE_TINY = [
    *TINY,
    "tune.population=2",
    "tune.budget=4",
    "tune.report_every=2",
    "tune.resources_per_trial.cpu=1",
]


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module: its start-up (seconds) is paid once."""
    ray = pytest.importorskip("ray", reason="the `tune` extra (Ray) is not installed")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def tune_cfg(tmp_path: Path, space: dict, *overrides: str):
    cfg = compose_cfg(
        "tune", [*TUNE_TINY, f"tune.storage_path={tmp_path / 'exp'}", *overrides], tmp_path / "drv"
    )
    with open_dict(cfg):
        cfg.search.space = space
    return cfg


def rows(trial_dir: Path) -> list[dict]:
    """Every result a trial reported, with the hyper-parameters it trained under (one JSON object a line)."""
    return [json.loads(line) for line in (trial_dir / "run" / "reports.jsonl").read_text().splitlines()]


def test_schedule_file_round_trip(tmp_path):
    a, b = {"loss.lr_g": 1e-4}, {"loss.lr_g": 2e-4}
    segments = extend(extend([], 0, a), 4, b)
    assert segments == [Segment(0, a), Segment(4, b)]
    assert extend(segments, 4, a) == [Segment(0, a)]  # resumed at 4 with the old values: no change point
    write_schedule(tmp_path / "s.json", segments, max_steps=8)
    assert read_schedule(tmp_path / "s.json") == (segments, {"max_steps": 8})


def test_user_errors_are_one_line(monkeypatch):
    with pytest.raises(
        SystemExit, match=r"^error: search=grid is not an option; choose one of: optuna, pbt, random"
    ):
        check_overrides(["search=grid"], config_name="tune")
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(ConfigError, match=r"Ray Tune is not installed: .*\[tune\]"):
        require_ray()


def test_optuna_searcher_on_pinned_optuna(tmp_path):
    pytest.importorskip("ray", reason="the `tune` extra (Ray) is not installed")
    from src.search.optuna2 import OptunaTPE

    space = {"loss.lr_g": ("log_uniform", [1e-4, 1e-3]), "loss.n_critic": ("choice", [1, 2])}
    searcher = OptunaTPE(space, metric="objective", mode="min", seed=0)
    config = searcher.suggest("t1")
    assert 1e-4 <= config["loss.lr_g"] <= 1e-3 and config["loss.n_critic"] in (1, 2)
    searcher.on_trial_complete("t1", {"objective": 0.5})
    searcher.suggest("t2")
    searcher.on_trial_complete("t2", error=True)
    searcher.save(str(tmp_path / "s.pkl"))
    again = OptunaTPE(space, metric="objective", mode="min")
    again.restore(str(tmp_path / "s.pkl"))
    assert [t.state.name for t in again.study.trials] == ["COMPLETE", "FAIL"]
    assert again.study.best_value == 0.5
    # tune.start=recipe: the recipe and its neighbours are the first trials asked, without a warning.
    from src.search.space import around

    recipe = OmegaConf.create({"loss": {"lr_g": 4e-4, "n_critic": 1}})
    points = around(space, recipe, 3, seed=0)
    assert points[0] == {"loss.lr_g": 4e-4, "loss.n_critic": 1}
    assert all(any(math.isclose(p["loss.lr_g"] / 4e-4, f) for f in (0.8, 1.2)) for p in points[1:])
    assert all(p["loss.n_critic"] == 2 for p in points[1:])  # the only neighbour of the first entry
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        seeded = OptunaTPE(space, metric="objective", mode="min", seed=0, points_to_evaluate=points)
    assert [seeded.suggest(f"t{i}") for i in range(3)] == points


def test_recipe_start_never_repeats_a_trial():
    # Two trials with one config and one seed train the same weights twice: the seventeenth session's
    # seed-1 population drew trial 3 equal to trial 1 and so searched with three trials of four.
    from src.search.space import around

    space = {
        "loss.lr_g": ("log_uniform", [5e-5, 1e-3]),
        "loss.lr_d": ("log_uniform", [5e-5, 2e-3]),
        "loss.terms.matching_aware": ("choice", [0.0, 0.05, 0.1, 0.2, 0.3]),
        "loss.terms.mode_seeking": ("choice", [0.0, 0.1, 0.3, 0.5, 1.0]),
    }
    recipe = OmegaConf.create(
        {"loss": {"lr_g": 4e-4, "lr_d": 4e-4, "terms": {"matching_aware": 0.1, "mode_seeking": 0.3}}}
    )
    for seed in range(20):
        points = around(space, recipe, 8, seed=seed)
        assert len({tuple(sorted(p.items())) for p in points}) == 8, seed
    # A space with fewer neighbours than trials repeats some rather than fail.
    small = {"loss.lr_g": ("log_uniform", [1e-4, 1e-3])}
    assert len(around(small, recipe, 4, seed=0)) == 4


def test_pbt_exploits_perturbs_and_replays(local_ray, tmp_path):
    space = {"loss": {"lr_g": {"log_uniform": [1e-4, 1e-3]}, "lr_d": {"log_uniform": [1e-4, 1e-3]}}}
    cfg = tune_cfg(
        tmp_path,
        space,
        "search=pbt",
        "optimized_metric=train/d_loss",
        "search.scheduler.perturbation_interval=2",
        "search.scheduler.synch=true",
        "search.scheduler.resample_probability=0.0",
        "logger=tensorboard",
        "tune.start=recipe",
    )
    summary = tune_or_replay(cfg)
    exp = tmp_path / "exp" / "pbt_digits"
    assert [t["error"] for t in summary["trials"]] == [None, None]
    trials = {t["trial"]: exp / t["trial"] for t in summary["trials"]}
    schedules = {name: read_schedule(d / "run" / "schedule.json")[0] for name, d in trials.items()}
    first_config = {name: rows(d)[0]["params"] for name, d in trials.items()}
    # tune.start=recipe: one trial starts from the run config's learning rates, the other one step away.
    recipe = {"loss.lr_g": cfg.loss.lr_g, "loss.lr_d": cfg.loss.lr_d}
    starts = sorted(first_config.values(), key=lambda p: p != recipe)
    assert starts[0] == recipe
    assert all(any(math.isclose(starts[1][k] / recipe[k], f) for f in (0.8, 1.2)) for k in recipe)
    changed = {name: s[1].start for name, s in schedules.items() if len(s) > 1}
    assert changed, "no trial was exploited"
    name = min(changed, key=changed.get)  # the first exploit: its donor had not been exploited yet
    (donor,) = set(trials) - {name}
    start = changed[name]
    assert schedules[name][0].params == first_config[donor] != first_config[name]
    new = schedules[name][1].params
    old = schedules[name][0].params
    for key in ("loss.lr_g", "loss.lr_d"):
        ratio = new[key] / old[key]
        assert any(math.isclose(ratio, f) for f in (0.8, 1.2)) or new[key] in (
            1e-4,
            1e-3,
        )  # x0.8/x1.2 or clipped
    after = [r for r in rows(trials[name]) if r["gan_step"] > start]
    # Resumed from the donor's step, not restarted, and the perturbed lrs are the ones in the optimizers.
    assert after[0]["gan_step"] == start + 2
    for r in rows(trials[name]):
        assert math.isclose(r["lr_g_applied"], r["params"]["loss.lr_g"], rel_tol=1e-9)
        assert math.isclose(r["lr_d_applied"], r["params"]["loss.lr_d"], rel_tol=1e-9)
    assert math.isclose(after[0]["lr_g_applied"], new["loss.lr_g"], rel_tol=1e-9)
    # The trial's own TensorBoard run shows the values it trained with, before and after the exploit.
    acc = EventAccumulator(str(trials[name] / "run" / "tensorboard"))
    acc.Reload()
    logged = {e.step: e.value for e in acc.Scalars("tune/loss.lr_g")}
    assert math.isclose(
        logged[start], first_config[name]["loss.lr_g"], rel_tol=1e-6
    )  # its own, then the copy
    assert math.isclose(logged[start + 2], new["loss.lr_g"], rel_tol=1e-6)

    best = Path(summary["best_schedule"])
    segments, meta = read_schedule(best)
    assert meta["max_steps"] == 4 and meta["metric"] == "train/d_loss"
    replay_cfg = compose_cfg(
        "tune", [*TUNE_TINY, f"replay={best}", "optimized_metric=null"], tmp_path / "replay"
    )
    out = tune_or_replay(replay_cfg)
    ckpt = torch.load(
        tmp_path / "replay" / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu"
    )
    assert ckpt["pixelgan_gan_step"] == 4
    g_lr, d_lr = (s["param_groups"][0]["lr"] for s in ckpt["optimizer_states"])
    assert (g_lr, d_lr) == (segments[-1].params["loss.lr_g"], segments[-1].params["loss.lr_d"])
    # The replay retraces the winner's weights (up to float noise: trials run with one thread, this with two).
    winner = torch.load(summary["best_checkpoint"], weights_only=False)
    for key, value in winner["state_dict"].items():
        if value.is_floating_point():
            torch.testing.assert_close(ckpt["state_dict"][key], value, atol=1e-4, rtol=0)
    assert out["objective"] is None  # no metric asked for: the tiny runs have no evaluation


def test_failed_trial_is_reported_and_a_rerun_resumes(local_ray, tmp_path):
    # Infinite instance noise makes D's losses NaN at the first step: that trial fails (model.guard stops it).
    space = {"loss": {"terms": {"instance_noise": {"grid": [0.0, float("inf")]}}}}
    cfg = tune_cfg(
        tmp_path,
        space,
        "search=random",
        "tune.population=1",
        "optimized_metric=train/d_loss",
        "loss.terms.instance_noise_steps=100",
    )
    first = tune_or_replay(cfg)
    by_noise = {t["config"]["loss.terms.instance_noise"]: t for t in first["trials"]}
    assert "non-finite" in by_noise[float("inf")]["error"]
    ok = by_noise[0.0]
    assert ok["error"] is None and ok["gan_step"] == 4 and math.isfinite(ok["objective"])
    assert first["best_objective"] == ok["objective"] and Path(first["best_schedule"]).is_file()
    reports = tmp_path / "exp" / "random_digits" / ok["trial"] / "run" / "reports.jsonl"
    done = reports.read_text()

    second = tune_or_replay(cfg)  # the same command again: the finished study is resumed, nothing reruns
    assert second["resumed"] and not first["resumed"]
    assert [t["trial"] for t in second["trials"]] == [t["trial"] for t in first["trials"]]
    assert second["best_objective"] == first["best_objective"]
    assert reports.read_text() == done


def test_optuna_draws_follow_the_run_seed(tmp_path):
    # TPE's sampler had a seed of its own (1234): `seed=1` repeated seed 0's Optuna study draw for draw.
    cfgs = [
        compose_cfg("tune", [*TUNE_TINY, "search=optuna", f"seed={s}"], tmp_path / str(s)) for s in (0, 1)
    ]
    assert [int(c.search.search_alg.seed) for c in cfgs] == [0, 1]
    pytest.importorskip("optuna")
    from src.search.optuna2 import OptunaTPE

    space = {"loss.lr_g": ("log_uniform", [1e-4, 1e-3])}
    draws = [OptunaTPE(space, metric="objective", mode="min", seed=c.search.search_alg.seed) for c in cfgs]
    assert draws[0].suggest("t0") != draws[1].suggest("t0")
