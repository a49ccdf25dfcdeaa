"""Shared fixtures: the real config tree, composed with tiny sizes, CPU only, writing to tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision.datasets.cifar
import torchvision.datasets.svhn
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(min(2, torch.get_num_threads()))

TINY = [
    # The char-CNN keeps tests fast; tests of other encoders select them (see tiny_cfg).
    "text_encoder=charcnn",
    "model.generator.base_channels=8",
    "model.discriminator.base_channels=8",
    "model.generator.z_dim=16",
    "text_encoder.embed_dim=16",
    "text_encoder.channels=16",
    "text_encoder.char_dim=8",
    "dataset.batch_size=8",
    "trainer.max_steps=3",
    "trainer.precision=32-true",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
    "logger=none",
    "callbacks.checkpoint.every_n_steps=2",
    "callbacks.samples.every_n_steps=2",
    "model.n_sample=2",
    "~callbacks.evaluation",
]


def run_together(code: str, *args: str, processes: int = 2) -> None:
    """Start `processes` fresh interpreters running `code` with `args` at once (a fork after torch's threads
    can hang) from the repository root; fail with their stderr unless all exit 0."""
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-c", code, *args]
    procs = [subprocess.Popen(cmd, cwd=root, stderr=subprocess.PIPE, text=True) for _ in range(processes)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * processes, errors


def compose_cfg(name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose `conf/<name>.yaml` with overrides, as Hydra would, pointing outputs at output_dir."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        if "output_dir" in cfg:
            cfg.output_dir = str(output_dir)
    return cfg


@pytest.fixture
def tiny_cfg(tmp_path):
    """Factory: tiny training config (digits by default) writing into tmp_path/<sub>."""

    def make(*overrides: str, sub: str = "run") -> DictConfig:
        base = TINY
        if any(o.startswith("text_encoder=") for o in overrides):
            charcnn_only = ("text_encoder=", "text_encoder.channels", "text_encoder.char_dim")
            base = [o for o in TINY if not o.startswith(charcnn_only)]
        return compose_cfg("train", base + list(overrides), tmp_path / sub)

    return make


@pytest.fixture
def mnist_dir() -> Path:
    if not (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.skip(f"real MNIST not found under {SHARED_DATA}/MNIST/raw")
    return SHARED_DATA


@pytest.fixture
def skip_checksums(monkeypatch):
    """Test files cannot match the published MD5s; everything else is torchvision's real parsing code."""
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    monkeypatch.setattr(torchvision.datasets.svhn, "check_integrity", lambda *a, **k: True)
