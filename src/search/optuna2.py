"""Optuna's TPE as a Ray Tune searcher, on the Optuna this project pins (2.x).

Ray's own `OptunaSearch` requires optuna >= 3, while the Hydra Optuna sweeper plugin (`hparams_search=`)
needs optuna < 3; this adapter uses the ask/tell interface both majors share, so one install serves both.
"""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import optuna
from ray.tune.search import Searcher

Space = dict[str, tuple[str, list]]


class OptunaTPE(Searcher):
    """Suggests each trial's hyper-parameters with an Optuna study (TPE by default); finished, stopped
    (ASHA) and failed trials are told back. Ranges come from `src.search.space.flatten`."""

    def __init__(
        self,
        space: Space,
        metric: str,
        mode: str,
        seed: int | None = None,
        n_startup_trials: int = 10,
        points_to_evaluate: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.space = space
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials)
        direction = "minimize" if mode == "min" else "maximize"
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(direction=direction, sampler=sampler)
        with warnings.catch_warnings():
            # Stable in every Optuna since 1.2; 2.x still labels it experimental.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            for point in points_to_evaluate or []:  # the first trials asked run these (tune.start=recipe)
                self.study.enqueue_trial(point)
        self.running: dict[str, Any] = {}  # Ray trial id -> Optuna trial

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """The next trial's {dotted key: value}."""
        trial = self.study.ask()
        self.running[trial_id] = trial
        config = {}
        for key, (kind, values) in self.space.items():
            if kind in ("log_uniform", "uniform"):
                config[key] = trial.suggest_float(key, values[0], values[1], log=kind == "log_uniform")
            else:
                config[key] = trial.suggest_categorical(key, list(values))
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Tell Optuna the trial's last objective (a trial ASHA stopped early counts with its last value)."""
        trial = self.running.pop(trial_id, None)
        if trial is None:
            return
        value = None if result is None else result.get(self.metric)
        if error or value is None or value != value or abs(value) == float("inf"):
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, float(value))

    def save(self, checkpoint_path: str) -> None:
        """Pickle the study (Ray calls this to make the experiment resumable)."""
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"study": self.study, "running": self.running}, f)

    def restore(self, checkpoint_path: str) -> None:
        """Load what `save` wrote."""
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self.study, self.running = state["study"], state["running"]
