"""Training as a library: `train(cfg)` and its parts (prepare, fit) for `python -m src.train`, the Ray Tune
trials and the benchmarks."""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning
import torch
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf, open_dict

from src.callbacks.progress import CompactModelSummary, GANProgressBar
from src.callbacks.report import closing_report, logger_outputs
from src.data.datamodule import TooFewImages
from src.data.folder import FolderDataError
from src.data.sources import DataFilesMissing
from src.models.factory import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    build_module,
    check_compatible,
    read_checkpoint,
)
from src.models.guard import DivergenceError
from src.utils.checkpoint_io import AtomicCheckpointIO
from src.utils.config import ConfigError, validate
from src.utils.distributed import check_ranks_in_sync
from src.utils.rng import seed_rank

log = logging.getLogger(__name__)


# Errors that mean "the user's input is wrong": reported in one line, no traceback.
# Lightning raises MisconfigurationException for settings that cannot work (trainer.devices=4 on one GPU).
USER_ERRORS = (
    ConfigError,
    DataFilesMissing,
    FolderDataError,
    TooFewImages,
    CheckpointError,
    DivergenceError,
    MisconfigurationException,
)


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
    record["checkpoint_format"] = CHECKPOINT_FORMAT
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


def build_trainer(cfg: DictConfig, model: Any, callbacks: list, loggers: list) -> lightning.Trainer:
    """Lightning Trainer from `cfg.trainer`; `trainer.max_steps` counts G updates, so the module stops the
    run itself (Lightning's own step count includes however many D updates each GAN step ran)."""
    max_steps = cfg.trainer.get("max_steps", -1)
    model.max_gan_steps = max_steps if max_steps and max_steps > 0 else -1
    return instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],
        max_steps=-1,
    )


@dataclass
class Run:
    """Everything a training run is made of, built and checked but not yet fitted."""

    cfg: DictConfig
    datamodule: Any
    model: Any
    trainer: lightning.Trainer
    ckpt_path: str | None
    # Filled by fit(): wall time of trainer.fit and one line per logger saying where its files are.
    seconds: float = 0.0
    logger_lines: list[str] = field(default_factory=list)


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


def terminal_callbacks(cfg: DictConfig) -> list:
    """PixelGAN's progress bar (G steps, not epochs) and model summary, where the trainer shows them."""
    out: list = []
    if cfg.trainer.get("enable_progress_bar", True):
        out.append(GANProgressBar(n_critic=int(cfg.loss.get("n_critic", 1))))
    if cfg.trainer.get("enable_model_summary", True):
        out.append(CompactModelSummary())
    return out


def prepare(cfg: DictConfig) -> Run:
    """Validate, load data, build model/trainer. Every check that can fail runs here, before training."""
    validate(cfg)
    ckpt_path = resolve_ckpt_path(cfg)
    _guard_output_dir(cfg, resuming=ckpt_path is not None)
    for path in (ckpt_path, cfg.get("init_from")):
        if path:
            check_compatible(read_checkpoint(path), cfg, path)

    seed_rank(cfg.seed)  # seed + global rank: each rank its own noise; data order uses cfg.seed
    datamodule = instantiate(cfg.dataset)
    datamodule.prepare_data()  # data errors surface here, before any run file is written
    datamodule.setup("fit")

    model = build_module(cfg)
    model.run_config = run_record(cfg)
    if cfg.get("init_from"):
        # Fine-tuning: weights only (G, D, text encoder, EMA); optimizers and step count start fresh.
        model.load_state_dict(read_checkpoint(cfg.init_from)["state_dict"])
        model.reset_counters()
        log.info("initialised weights from %s", cfg.init_from)

    # The bar goes first: at the end it closes before the callbacks' final saves and evaluation run.
    callbacks = terminal_callbacks(cfg) + [instantiate(c) for c in _targets(cfg.get("callbacks"))]
    _group_sweep_runs(cfg)
    loggers = [instantiate(lg) for lg in _targets(cfg.get("logger"))]
    trainer = build_trainer(cfg, model, callbacks, loggers)
    return Run(cfg, datamodule, model, trainer, ckpt_path)


def fit(run: Run) -> dict[str, float]:
    """Fit a prepared run; returns the final callback metrics as floats."""
    trainer, model = run.trainer, run.model
    for lg in trainer.loggers:
        lg.log_hyperparams(model.run_config)
    start = time.monotonic()
    try:
        trainer.fit(model, datamodule=run.datamodule, ckpt_path=run.ckpt_path)
    finally:
        run.seconds = time.monotonic() - start
        run.logger_lines = logger_outputs(trainer.loggers)  # W&B's folder is unreadable once finished
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
    if run.trainer.is_global_zero:
        out = cfg.paths.output_dir
        log.info(closing_report(run.trainer, run.model.gan_step, run.seconds, out, run.logger_lines))
    return metrics, {"trainer": run.trainer, "model": run.model, "datamodule": run.datamodule}


def objective_value(metrics: dict[str, float], name: str | None) -> float | None:
    """The metric a Hydra sweeper optimises, or None when none is configured."""
    if not name:
        return None
    if name not in metrics:
        raise ConfigError(f"optimized_metric={name!r} was not computed; available: {sorted(metrics)}")
    return metrics[name]
