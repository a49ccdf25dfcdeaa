"""Training entry point: `python -m src.train [hydra overrides]`; `train(cfg)` is callable from tests."""

from __future__ import annotations

import logging
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning
import torch
from hydra.utils import instantiate
from lightning.pytorch import seed_everything
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf, open_dict

from src.data.folder import FolderDataError
from src.data.sources import DataFilesMissing
from src.models.factory import CheckpointError, build_module, check_compatible, read_checkpoint
from src.models.gan_module import DivergenceError
from src.utils.checkpoint_io import AtomicCheckpointIO
from src.utils.cli import check_yaml
from src.utils.config import ConfigError, validate
from src.utils.distributed import check_ranks_in_sync, hydra_argv_for_ddp_children

log = logging.getLogger(__name__)


def _ensure_dir(path: str) -> str:
    Path(path).mkdir(parents=True, exist_ok=True)
    return path


# `${ensure_dir:...}` creates a folder while the config resolves (Optuna's SQLite file needs its folder
# before Hydra's launcher makes the sweep directory).
if not OmegaConf.has_resolver("ensure_dir"):
    OmegaConf.register_new_resolver("ensure_dir", _ensure_dir)

# Errors that mean "the user's input is wrong": reported in one line, no traceback.
USER_ERRORS = (ConfigError, DataFilesMissing, FolderDataError, CheckpointError, DivergenceError)


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """`ckpt_path=last` means `<output_dir>/checkpoints/last.ckpt`; anything else is taken as given."""
    ckpt = cfg.get("ckpt_path")
    if ckpt in (None, ""):
        return None
    if ckpt == "last":
        last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise CheckpointError(f"ckpt_path=last but {last} does not exist")
        return str(last)
    return str(ckpt)


def run_record(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config plus library versions: logged as the W&B run config and stored in checkpoints."""
    record = OmegaConf.to_container(cfg, resolve=True)
    record["versions"] = {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "lightning": lightning.__version__,
    }
    return record


def _guard_output_dir(cfg: DictConfig, resuming: bool) -> None:
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    if last.exists() and not resuming:
        raise ConfigError(
            f"{last.parent.parent} already holds a run: resume it with ckpt_path=last, "
            "or choose another hydra.run.dir"
        )


def build_trainer(cfg: DictConfig, n_critic: int, callbacks: list, loggers: list) -> lightning.Trainer:
    """Lightning Trainer from `cfg.trainer`, with max_steps translated from G updates to optimizer steps."""
    max_steps = cfg.trainer.get("max_steps", -1)
    lightning_steps = max_steps * (n_critic + 1) if max_steps and max_steps > 0 else -1
    return instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],
        max_steps=lightning_steps,
    )


@dataclass
class Run:
    """Everything a training run is made of, built and checked but not yet fitted."""

    cfg: DictConfig
    datamodule: Any
    model: Any
    trainer: lightning.Trainer
    ckpt_path: str | None


def _group_sweep_runs(cfg: DictConfig) -> None:
    """In a Hydra multirun, each job is its own W&B run, grouped by the sweep folder's name."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg is None or not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    hc = HydraConfig.get()
    with open_dict(cfg):
        wandb_cfg.group = wandb_cfg.group or Path(hc.sweep.dir).name
        wandb_cfg.name = wandb_cfg.name or f"{hc.job.num}-{hc.job.override_dirname}"[:128]


def _targets(group: DictConfig | None) -> list[DictConfig]:
    """The instantiable entries of a callbacks/logger node. An entry without `_target_` is what a recipe
    set on a callback the user switched off (`experiment=mnist callbacks=none`): nothing to build."""
    return [c for c in (group or {}).values() if c is not None and "_target_" in c]


def prepare(cfg: DictConfig) -> Run:
    """Validate, load data, build model/trainer. Every check that can fail runs here, before training."""
    validate(cfg)
    ckpt_path = resolve_ckpt_path(cfg)
    _guard_output_dir(cfg, resuming=ckpt_path is not None)
    for path in (ckpt_path, cfg.get("init_from")):
        if path:
            check_compatible(read_checkpoint(path), cfg, path)

    seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.dataset)
    datamodule.prepare_data()  # data errors surface here, before any run file is written
    datamodule.setup("fit")

    model = build_module(cfg)
    model.run_config = run_record(cfg)
    if cfg.get("init_from"):
        # Fine-tuning: weights only (G, D, text encoder, EMA); optimizers and step count start fresh.
        model.load_state_dict(read_checkpoint(cfg.init_from)["state_dict"])
        log.info("initialised weights from %s", cfg.init_from)

    callbacks = [instantiate(c) for c in _targets(cfg.get("callbacks"))]
    _group_sweep_runs(cfg)
    loggers = [instantiate(lg) for lg in _targets(cfg.get("logger"))]
    trainer = build_trainer(cfg, cfg.loss.n_critic, callbacks, loggers)
    return Run(cfg, datamodule, model, trainer, ckpt_path)


def fit(run: Run) -> dict[str, float]:
    """Fit a prepared run; returns the final callback metrics as floats."""
    trainer, model = run.trainer, run.model
    for lg in trainer.loggers:
        lg.log_hyperparams(model.run_config)
    try:
        trainer.fit(model, datamodule=run.datamodule, ckpt_path=run.ckpt_path)
    finally:
        # Close W&B runs here, not at exit: a Hydra multirun trains many runs in one process.
        for lg in trainer.loggers:
            if isinstance(lg, WandbLogger) and lg._experiment is not None:
                lg.experiment.finish()
    model.check_weights_finite()
    check_ranks_in_sync(trainer, model, run.cfg.paths.output_dir)
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Train a model; returns (metrics, objects) so tests and sweepers can use both."""
    run = prepare(cfg)
    metrics = fit(run)
    return metrics, {"trainer": run.trainer, "model": run.model, "datamodule": run.datamodule}


def objective_value(metrics: dict[str, float], name: str | None) -> float | None:
    """The metric a Hydra sweeper optimises, or None when none is configured."""
    if not name:
        return None
    if name not in metrics:
        raise ConfigError(f"optimized_metric={name!r} was not computed; available: {sorted(metrics)}")
    return metrics[name]


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        hydra_argv_for_ddp_children()
        metrics, _ = train(cfg)
        return objective_value(metrics, cfg.get("optimized_metric"))
    except USER_ERRORS as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    check_yaml(sys.argv[1:])
    main()
