"""Builds and runs a Ray Tune experiment from the tune config; a rerun of the same command resumes it."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import ray
from hydra.utils import instantiate
from omegaconf import DictConfig
from ray import tune
from ray.tune.search import BasicVariantGenerator

from src.search.overrides import portable
from src.search.report import CKPT_FILE, SCHEDULE_FILE
from src.search.space import ClipToRanges, around, flatten, mutations, param_space, present
from src.search.trainable import run_trial
from src.utils.config import ConfigError, validate

log = logging.getLogger(__name__)

# What each trial reports as the value optimised (src/search/report.py).
METRIC = "objective"


def connect(tune_cfg: DictConfig) -> None:
    """Join `tune.address`'s cluster, or start a local Ray without dashboard or usage reporting."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network at run time
    if ray.is_initialized():
        return  # a caller (a test, a notebook) started Ray already
    if tune_cfg.address:
        ray.init(address=tune_cfg.address, log_to_driver=True)
    else:
        ray.init(num_cpus=tune_cfg.get("num_cpus"), include_dashboard=False, log_to_driver=True)


def _checked(cfg: DictConfig) -> tuple[dict[str, Any], int, int]:
    """(search space, G steps per trial, report interval), refusing settings that cannot work."""
    if not cfg.get("optimized_metric"):
        raise ConfigError("optimized_metric must name the metric to optimise (e.g. eval/cfid)")
    if cfg.tune.mode not in ("min", "max"):
        raise ConfigError(f"tune.mode must be min or max (got {cfg.tune.mode!r})")
    budget, every = int(cfg.tune.budget), int(cfg.tune.report_every)
    if budget < 1 or every < 1 or int(cfg.tune.population) < 1:
        raise ConfigError("tune.budget, tune.report_every and tune.population must be >= 1")
    for key in ("perturbation_interval", "grace_period"):
        value = (cfg.search.get("scheduler") or {}).get(key)
        if value is not None and value % every:
            raise ConfigError(
                f"search.scheduler.{key}={value} must be a multiple of tune.report_every={every}"
            )
    space = present(flatten(cfg.search.get("space")), cfg)
    if not space:
        raise ConfigError("search.space holds no key of the run config: nothing to search")
    start = cfg.tune.get("start", "random")
    if start not in ("random", "recipe"):
        raise ConfigError(f"tune.start must be random or recipe (got {start!r})")
    if start == "recipe" and any(kind == "grid" for kind, _ in space.values()):
        raise ConfigError("tune.start=recipe starts from the run config's values: search.space has a grid")
    validate(cfg)
    return space, budget, every


def experiment_path(cfg: DictConfig) -> str:
    """`<tune.storage_path>/<tune.name>`: an absolute folder, or a URI (shared storage) left as given."""
    storage = str(cfg.tune.storage_path)
    root = storage if "://" in storage else str(Path(storage).resolve())
    return f"{root.rstrip('/')}/{cfg.tune.name}"


def _tuner(cfg: DictConfig, path: str, trainable: Any, space: dict[str, Any]) -> tune.Tuner:
    """A new experiment: the scheduler and search algorithm of `cfg.search`, trials as `cfg.tune` says."""
    mode = cfg.tune.mode
    scheduler, search_alg = None, None
    if cfg.search.get("scheduler"):
        extra = {"hyperparam_mutations": mutations(space), "custom_explore_fn": ClipToRanges(space)}
        scheduler = instantiate(cfg.search.scheduler)(
            metric=METRIC, mode=mode, **(extra if cfg.search.get("explores") else {})
        )
    # tune.start=recipe: the first trial runs the run config's own values, the others one explore step away.
    recipe = cfg.tune.get("start") == "recipe"
    points = around(space, cfg, int(cfg.tune.population), int(cfg.seed)) if recipe else None
    if cfg.search.get("search_alg"):
        extra = {"points_to_evaluate": points} if points else {}
        search_alg = instantiate(cfg.search.search_alg)(space=space, metric=METRIC, mode=mode, **extra)
    elif points:
        search_alg = BasicVariantGenerator(points_to_evaluate=points)
    return tune.Tuner(
        trainable,
        # A search algorithm suggests whole configs itself; otherwise Ray draws from the distributions.
        param_space={} if cfg.search.get("search_alg") else param_space(space),
        tune_config=tune.TuneConfig(
            scheduler=scheduler,
            search_alg=search_alg,
            num_samples=int(cfg.tune.population),
            # tune.max_concurrent, else the search's own limit (a sequential searcher needs results to learn).
            max_concurrent_trials=cfg.tune.get("max_concurrent") or cfg.search.get("max_concurrent"),
            # A new worker process per trial start: a reused one could go on training the old config when
            # PBT's restart of the trial's function times out (Ray's 2 s thread timeout).
            reuse_actors=False,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=str(cfg.tune.name),
            storage_path=path.rpartition("/")[0],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=int(cfg.tune.keep_checkpoints)),
            failure_config=tune.FailureConfig(max_failures=0),
            # Stopped at the budget before the scheduler sees the last report: no exploit of a finished run.
            stop={"gan_step": int(cfg.tune.budget)},
            verbose=1,
        ),
    )


def trial_dirname(trial: Any) -> str:
    """`trial_<id>`: Ray's default names hold the sampled values with `=` and `,`, which a path given back
    as a Hydra override (ckpt_path=...) cannot contain unquoted."""
    return f"trial_{trial.trial_id}"


def run_search(cfg: DictConfig) -> dict[str, Any]:
    """Run (or resume) the experiment of `cfg.search`; write `results.json` and the winner's schedule
    (`best_schedule.json`) into the experiment folder and return that summary."""
    space, budget, every = _checked(cfg)
    random.seed(cfg.seed)  # PBT's explore draws from Python's and NumPy's generators in this process
    np.random.seed(cfg.seed)
    base = portable(cfg)
    base["trainer"]["max_steps"] = budget
    path = experiment_path(cfg)
    connect(cfg.tune)
    trainable = tune.with_resources(
        tune.with_parameters(
            run_trial, base=base, metric=cfg.optimized_metric, mode=cfg.tune.mode, report_every=every
        ),
        {k: float(v) for k, v in cfg.tune.resources_per_trial.items()},
    )
    resumed = tune.Tuner.can_restore(path)
    if resumed and not cfg.tune.resume:
        raise ConfigError(f"{path} holds an experiment and tune.resume=false: choose another tune.name")
    if resumed:
        log.info("resuming the experiment in %s", path)
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_errored=False)
    else:
        tuner = _tuner(cfg, path, trainable, space)
    grid = tuner.fit()
    # The summary goes beside the trials; with remote storage, into this command's own run folder.
    out = Path(path) if "://" not in path else Path(cfg.paths.output_dir)
    return summarize(grid, out, cfg.optimized_metric, cfg.tune.mode, resumed)


def summarize(grid: tune.ResultGrid, out: Path, metric: str, mode: str, resumed: bool) -> dict[str, Any]:
    """One line per trial in the log; `results.json` and `best_schedule.json` written into `out`."""
    trials = []
    for result in grid:
        name = Path(result.path).name
        error = None if result.error is None else str(result.error).strip().splitlines()[-1][:300]
        objective = (result.metrics or {}).get(METRIC)
        trials.append(
            {
                "trial": name,
                "objective": objective,
                "gan_step": (result.metrics or {}).get("gan_step"),
                "config": result.config,
                "error": error,
            }
        )
        if error:
            log.warning("trial %s failed: %s", name, error)
    summary: dict[str, Any] = {
        "metric": metric,
        "mode": mode,
        "resumed": resumed,
        "trials": trials,
        "best": None,
        "best_objective": None,
        "best_schedule": None,
        "best_checkpoint": None,
    }
    scored = [
        r for r in grid if r.error is None and r.checkpoint is not None and r.metrics.get(METRIC) is not None
    ]
    out.mkdir(parents=True, exist_ok=True)
    if scored:
        # The best last report among trials that finished (a failed trial's earlier score does not count).
        best = (min if mode == "min" else max)(scored, key=lambda r: r.metrics[METRIC])
        summary["best"], summary["best_objective"] = Path(best.path).name, best.metrics[METRIC]
        with best.checkpoint.as_directory() as folder:
            shutil.copyfile(Path(folder) / SCHEDULE_FILE, out / "best_schedule.json")
            # The winner's weights at its last report, beside the summary (also when trials live on remote
            # storage), for src.evaluate / src.generate / src.export.
            shutil.copyfile(Path(folder) / CKPT_FILE, out / "best.ckpt")
        summary["best_schedule"] = str(out / "best_schedule.json")
        summary["best_checkpoint"] = str(out / "best.ckpt")
        log.info(
            "best trial %s: %s=%s, weights %s; replay its schedule with `python -m src.tune replay=%s`",
            summary["best"],
            metric,
            summary["best_objective"],
            summary["best_checkpoint"],
            summary["best_schedule"],
        )
    (out / "results.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
