"""Bad input is rejected before training with a clear one-line message, and nothing is overwritten."""

import subprocess
import sys

import pytest
import torch

from src.models.factory import CheckpointError
from src.training import train
from src.utils.config import ConfigError

from conftest import ROOT, TINY, compose_cfg


@pytest.mark.parametrize(
    "override,message",
    [
        ("loss.lr_g=0", "loss.lr_g must be > 0"),
        ("loss.lr_d=-1e-4", "loss.lr_d must be > 0"),
        ("loss.n_critic=0", "loss.n_critic must be an integer >= 1"),
        ("dataset.batch_size=0", "dataset.batch_size must be an integer >= 1"),
        ("dataset.image_size=30", "image_size=30 cannot be built"),
        ("model.ema_decay=1.5", "model.ema_decay must be in [0, 1)"),
        ("trainer.max_steps=0", "trainer.max_steps must be -1"),
        ("loss.terms.mode_seeking=-1", "loss.terms.mode_seeking must be >= 0"),
        ("loss.terms.mode_seeking_bound=-0.1", "loss.terms.mode_seeking_bound must be >= 0"),
    ],
)
def test_invalid_values_rejected_before_training(tiny_cfg, override, message, tmp_path):
    cfg = tiny_cfg(override)
    with pytest.raises(
        ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
    ):
        train(cfg)
    assert not (tmp_path / "run").exists()  # nothing written


def test_negative_text_jitter_rejected_before_training(tiny_cfg, tmp_path):
    cfg = tiny_cfg("text_encoder=minilm_jitter", "text_encoder.noise_std=-0.1")
    with pytest.raises(ConfigError, match=r"text_encoder.noise_std must be >= 0"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "src.train", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_unknown_group_option_lists_valid_ones(tmp_path):
    res = run_cli("dataset=imagenet", f"hydra.run.dir={tmp_path}/x")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip() == (
        "error: dataset=imagenet is not an option; "
        "choose one of: cifar10, digits, folder, mnist, scenes, svhn"
    )


def test_cli_reports_one_line_error_without_traceback(tmp_path):
    res = run_cli("loss.lr_g=-1", "loss.n_critic=0", f"hydra.run.dir={tmp_path}/x", "logger=none")
    assert res.returncode == 1
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: invalid config:") and "loss.lr_g" in last and "loss.n_critic" in last
    assert "Traceback" not in res.stderr


def test_missing_data_files_fail_before_any_run_file(tiny_cfg, tmp_path):
    cfg = tiny_cfg("dataset=cifar10", f"paths.data_dir={tmp_path}/nodata", "dataset.download=false")
    from src.data.sources import DataFilesMissing

    with pytest.raises(DataFilesMissing, match="cifar-10-batches-py"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_incompatible_checkpoint_says_what_differs(tiny_cfg):
    cfg = tiny_cfg("trainer.max_steps=1", sub="a")
    train(cfg)
    ckpt = f"{cfg.paths.output_dir}/checkpoints/last.ckpt"
    with pytest.raises(CheckpointError, match=r"model.generator.base_channels: checkpoint=8, now=16"):
        train(tiny_cfg(f"ckpt_path={ckpt}", "model.generator.base_channels=16", sub="b"))
    with pytest.raises(CheckpointError, match=r"dataset.channels"):
        train(tiny_cfg(f"init_from={ckpt}", "dataset=cifar10", sub="c"))


def test_not_a_checkpoint(tiny_cfg, tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        train(tiny_cfg(f"ckpt_path={junk}"))
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a PixelGAN checkpoint"):
        train(tiny_cfg(f"init_from={foreign}"))


def test_output_folder_with_another_run_is_not_overwritten(tiny_cfg):
    cfg = tiny_cfg("trainer.max_steps=1", sub="same")
    train(cfg)
    last = f"{cfg.paths.output_dir}/checkpoints/last.ckpt"
    before = open(last, "rb").read()
    with pytest.raises(ConfigError, match="already holds a run"):
        train(tiny_cfg("trainer.max_steps=1", sub="same"))
    assert open(last, "rb").read() == before


def test_recipe_settings_for_a_switched_off_callback_group_are_ignored(tmp_path):
    # experiment=mnist sets callbacks.checkpoint.every_n_steps; with callbacks=none that is a bare dict.
    tiny = [o for o in TINY if "callbacks" not in o]
    overrides = [
        "experiment=digits",
        "callbacks=none",
        "+callbacks.checkpoint.every_n_steps=5",
        "trainer.max_steps=1",
    ]
    _, objs = train(compose_cfg("train", tiny + overrides, tmp_path))
    assert objs["model"].gan_step == 1


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["trainer.max_step=5"],
            "trainer.max_step is not a setting (did you mean trainer.max_steps?); "
            "to add a new key write +trainer.max_step=...",
        ),
        (["callbacks=[default,nope]"], "callbacks=nope is not an option; choose one of: "),
        (["hydra/launcher=slurn"], "hydra/launcher=slurn is not an option; choose one of: "),
        (["foo"], "Error parsing override 'foo': overrides are key=value, e.g. trainer.max_steps=500"),
        (["trainer.max_steps=1,2"], "Ambiguous value for argument 'trainer.max_steps=1,2'; 1. To use it as"),
    ],
)
def test_bad_override_is_one_line_before_hydra_runs(overrides, message):
    from src.utils.cli import check_overrides

    with pytest.raises(SystemExit) as exit_:
        check_overrides(overrides)
    text = str(exit_.value.code)
    assert text.startswith("error: " + message) and "\n" not in text
    check_overrides(["trainer.max_steps=5", "+trainer.max_step=5", "hydra/launcher=slurm"])  # valid: no exit
    check_overrides(["-m", "trainer.max_steps=1,2"])  # multirun flags: left to Hydra


def test_trainer_setting_lightning_refuses_is_one_line(tmp_path):
    res = run_cli("trainer.max_time=abc", f"hydra.run.dir={tmp_path}/x", "logger=none")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        "error: trainer: `Timer(duration='abc')` is not a valid duration. Expected a string in the format "
        "DD:HH:MM:SS."
    )


def test_folder_smaller_than_one_batch_is_one_line(tmp_path):
    from test_folder import make_images

    make_images(tmp_path / "few", ["a.png", "b.png", "c.png"])
    for stem in "abc":
        (tmp_path / "few" / f"{stem}.txt").write_text("a small picture")
    folder = ["dataset=folder", f"paths.data_dir={tmp_path}/few", "loss.n_critic=1"]
    res = run_cli(*folder, f"hydra.run.dir={tmp_path}/x")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        "error: 3 images cannot fill one step of 64 samples per rank (dataset.batch_size=64 x 1 critic "
        "batches) on 1 rank(s): set dataset.batch_size=3 or lower, or add images"
    )
    assert not (tmp_path / "x" / "checkpoints").exists()
