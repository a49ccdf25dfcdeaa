"""Bad input is rejected before training with a clear one-line message, and nothing is overwritten."""

import subprocess
import sys

import pytest
import torch

from src.models.factory import CheckpointError
from src.train import train
from src.utils.config import ConfigError

from conftest import ROOT, TINY, compose_cfg


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.lr_g=0", "model.lr_g must be > 0"),
        ("model.lr_d=-1e-4", "model.lr_d must be > 0"),
        ("loss.n_critic=0", "loss.n_critic must be an integer >= 1"),
        ("dataset.batch_size=0", "dataset.batch_size must be an integer >= 1"),
        ("dataset.image_size=30", "image_size=30 cannot be built"),
        ("model.ema_decay=1.5", "model.ema_decay must be in [0, 1)"),
        ("trainer.max_steps=0", "trainer.max_steps must be -1"),
        ("model.mode_seeking_weight=-1", "model.mode_seeking_weight must be >= 0"),
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
    assert res.returncode != 0
    assert "Could not find 'dataset/imagenet'" in res.stderr
    for name in ("digits", "mnist", "cifar10", "svhn"):
        assert name in res.stderr


def test_cli_reports_one_line_error_without_traceback(tmp_path):
    res = run_cli("model.lr_g=-1", "loss.n_critic=0", f"hydra.run.dir={tmp_path}/x", "logger=none")
    assert res.returncode == 1
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: invalid config:") and "model.lr_g" in last and "loss.n_critic" in last
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
