"""Generation from a checkpoint: grid + npz with the right shapes and prompts; prompt handling."""

import numpy as np
import pytest
from PIL import Image

from src.generate import generate
from src.train import train
from src.utils.config import ConfigError

from conftest import compose_cfg


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from conftest import TINY

    out = tmp_path_factory.mktemp("gen_run")
    train(compose_cfg("train", TINY + ["trainer.max_steps=2"], out))
    return out / "checkpoints" / "last.ckpt"


def gen_cfg(ckpt, out, *overrides):
    return compose_cfg("generate", [f"ckpt_path={ckpt}", *overrides], out)


def test_generate_writes_grid_and_npz(ckpt, tmp_path):
    res = generate(gen_cfg(ckpt, tmp_path, 'prompts=["a handwritten digit three","seven"]', "n_per_prompt=3"))
    data = np.load(tmp_path / "samples.npz")
    assert data["images"].shape == (6, 28, 28, 1) and data["images"].dtype == np.uint8
    assert data["prompts"].tolist() == ["a handwritten digit three"] * 3 + ["seven"] * 3
    grid = Image.open(tmp_path / "grid.png")
    assert grid.size == (3 * 30 + 2, 2 * 30 + 2)  # 3 per row, one row per prompt, 2-px padding
    assert res["images"].shape == data["images"].shape


def test_default_prompts_and_interpolation(ckpt, tmp_path):
    generate(
        gen_cfg(
            ckpt, tmp_path, "n_per_prompt=1", 'interpolate=["digit 1","digit 7"]', "interpolation_steps=5"
        )
    )
    data = np.load(tmp_path / "samples.npz")
    assert data["prompts"].tolist()[:2] == ["a handwritten digit zero", "a handwritten digit one"]
    assert len(data["prompts"]) == 10
    assert Image.open(tmp_path / "interpolation.png").size == (5 * 30 + 2, 4 * 30 + 2)


@pytest.mark.parametrize("prompt", ["x" * 10_000, "émoji 🎉 ünïcode", "tab\tand\nnewline\x00"])
def test_unseen_characters_and_long_prompts_work(ckpt, tmp_path, prompt):
    cfg = gen_cfg(ckpt, tmp_path, "n_per_prompt=2")
    cfg.prompts = [prompt]
    data = np.load(generate(cfg)["npz"])
    assert data["images"].shape == (2, 28, 28, 1)


@pytest.mark.parametrize("prompts", [[""], ["ok", "   "], []])
def test_empty_prompt_is_a_clear_error(ckpt, tmp_path, prompts):
    cfg = gen_cfg(ckpt, tmp_path)
    cfg.prompts = prompts
    with pytest.raises(ConfigError, match="empty"):
        generate(cfg)
    assert not (tmp_path / "samples.npz").exists()
