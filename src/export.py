"""Export: `python -m src.export ckpt_path=<run>/checkpoints/last.ckpt output_dir=models/mnist`.

Writes `<output_dir>/bundle.pt` (EMA generator + text side, see src/serving/bundle.py) and
`<output_dir>/MODEL_CARD.md` (data, recipe, commands, metrics, known limits), then checks that the bundle
draws the same images as the checkpoint.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from src.models.factory import CheckpointError
from src.serving.bundle import (
    BUNDLE_KEY,
    BundleError,
    bundle_dict,
    load_sampler,
    read_model_file,
    save_bundle,
)
from src.serving.card import model_card
from src.serving.provenance import Evaluation, find_evaluation, recorded_command
from src.serving.sampling import noise
from src.utils.cli import check_argv, run_entry
from src.utils.config import ConfigError
from src.utils.inputs import checkpoint_path

USER_ERRORS = (ConfigError, CheckpointError, BundleError)


def evaluation_for(cfg: DictConfig, ckpt: Path, gan_step: int) -> Evaluation | None:
    """The metrics.json given as `metrics=`, or the newest one that scored this checkpoint at this G step."""
    if not cfg.get("metrics"):
        return find_evaluation(ckpt, gan_step, Path(cfg.paths.log_dir))
    path = Path(cfg.metrics)
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"metrics={path} is not a readable metrics.json ({type(err).__name__})") from err
    if metrics.get("gan_step") not in (gan_step, None):
        raise ConfigError(
            f"metrics={path} scored G step {metrics.get('gan_step')}, the checkpoint is at G step {gan_step}"
        )
    return Evaluation(path, metrics, recorded_command(path.parent, "evaluate"), {})


def export_command(cfg: DictConfig) -> str:
    """This export's command line: the overrides Hydra parsed, or the essential ones when called directly."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        # notes= is card prose, not part of how the bundle was made.
        args = [a for a in HydraConfig.get().overrides.task if not a.startswith("notes=")]
    else:
        args = [f"ckpt_path={cfg.ckpt_path}", f"output_dir={cfg.output_dir}"]
    return " ".join(["python -m src.export", *(shlex.quote(a) for a in args)])


def export(cfg: DictConfig) -> dict[str, Any]:
    """Checkpoint -> bundle + model card; returns their paths, the card text and the bundle size (bytes)."""
    ckpt = checkpoint_path(cfg)
    if BUNDLE_KEY in read_model_file(ckpt):
        raise ConfigError(f"ckpt_path={ckpt} is already a bundle; export reads a training checkpoint")
    sampler = load_sampler(ckpt)
    out = Path(cfg.output_dir)
    source = {"checkpoint": ckpt.name, "gan_step": sampler.gan_step}
    bundle_path = save_bundle(sampler, out / cfg.bundle_name, source)

    # The bundle must draw exactly what the checkpoint draws; anything else is a bug, not a user error.
    prompts = ["a test prompt", "digit 3"] * 4
    z = noise(len(prompts), sampler.z_dim, seed=0)
    if not torch.equal(sampler(prompts, z), load_sampler(bundle_path)(prompts, z)):
        raise RuntimeError(f"{bundle_path} does not reproduce {ckpt}'s images; please report this")

    run_dir = ckpt.resolve().parent.parent
    evaluation = evaluation_for(cfg, ckpt, sampler.gan_step)
    commands = {
        "Trained with": cfg.get("train_command") or recorded_command(run_dir, "train"),
        "Evaluated with": evaluation.command if evaluation else None,
        "Exported with": export_command(cfg),
    }
    card = model_card(bundle_dict(sampler, source), bundle_path, evaluation, commands, cfg.get("notes"))
    card_path = out / "MODEL_CARD.md"
    card_path.write_text(card, encoding="utf-8")
    size = bundle_path.stat().st_size
    metrics_note = (
        f"metrics from {evaluation.path}" if evaluation else "no metrics.json found for this checkpoint"
    )
    print(f"wrote {bundle_path} ({size / 1e6:.1f} MB) and {card_path} ({metrics_note})")
    return {"bundle": bundle_path, "card": card_path, "card_text": card, "bytes": size}


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    """CLI entry: export; errors the user can fix end the run with one `error: ...` line."""
    run_entry(export, cfg, USER_ERRORS)


if __name__ == "__main__":
    check_argv("export")
    main()
