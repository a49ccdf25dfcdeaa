"""Generation from a checkpoint: grid + npz with the right shapes and prompts; prompt handling."""

import numpy as np
import pytest
from PIL import Image

from src.generate import generate
from src.training import train
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


def test_per_sample_pngs_match_the_npz_and_replace_older_ones(ckpt, tmp_path):
    stale = tmp_path / "samples" / "7_old-prompt.png"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    (tmp_path / "samples" / "notes.txt").write_text("mine")
    cfg = gen_cfg(ckpt, tmp_path, 'prompts=["A red bird!","seven"]', "n_per_prompt=2", "per_sample=true")
    res = generate(cfg)
    names = sorted(p.name for p in (tmp_path / "samples").glob("*.png"))
    assert names == ["0_a-red-bird.png", "1_a-red-bird.png", "2_seven.png", "3_seven.png"]
    assert (tmp_path / "samples" / "notes.txt").exists()  # only our own numbered PNGs are replaced
    data = np.load(res["npz"])
    for i, name in enumerate(names):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "samples" / name)), data["images"][i][..., 0])


def test_ckpt_path_latest_picks_the_newest_training_run(ckpt, tmp_path):
    logs = tmp_path / "logs"
    target = logs / "train" / "runs" / "2024-05-01_12-00-00" / "checkpoints" / "last.ckpt"
    target.parent.mkdir(parents=True)
    target.write_bytes(ckpt.read_bytes())
    res = generate(gen_cfg("latest", tmp_path / "out", f"paths.log_dir={logs}", "n_per_prompt=1"))
    assert len(res["prompts"]) == 10
    with pytest.raises(ConfigError, match="ckpt_path=latest but no training run"):
        generate(gen_cfg("latest", tmp_path / "out", f"paths.log_dir={tmp_path}/nothing"))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["n_per_prompt=0"], "n_per_prompt must be an integer >= 1"),
        (["batch_size=-1"], "batch_size must be an integer >= 1"),
        (['interpolate=["one"]'], "interpolate needs exactly two prompts"),
        (["device=cuda:7"], "device=cuda:7"),
    ],
)
def test_bad_settings_are_refused_before_loading(tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match):
        generate(gen_cfg(tmp_path / "not_read.ckpt", tmp_path, *overrides))


@pytest.fixture(scope="module")
def folder_ckpt(tmp_path_factory):
    from conftest import TINY

    root = tmp_path_factory.mktemp("gen_folder")
    (root / "folder").mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
            root / "folder" / f"{i:02d}.png"
        )
        (root / "folder" / f"{i:02d}.txt").write_text(f"picture number {i}")
    overrides = [
        "dataset=folder",
        f"paths.data_dir={root}/folder",
        "dataset.image_size=16",
        "trainer.max_steps=2",
    ]
    train(compose_cfg("train", TINY + overrides, root / "run"))
    return root


def test_generate_from_a_folder_checkpoint(folder_ckpt, tmp_path):
    ckpt = folder_ckpt / "run" / "checkpoints" / "last.ckpt"
    # No prompts: the folder's first captions, as the training grids used.
    res = generate(gen_cfg(ckpt, tmp_path, "n_per_prompt=1", f"paths.data_dir={folder_ckpt}/folder"))
    assert res["prompts"] == [f"picture number {i}" for i in range(8)]
    assert res["images"].shape == (8, 16, 16, 3)
    res = generate(gen_cfg(ckpt, tmp_path, 'prompts=["a red bird"]', "n_per_prompt=2"))
    assert res["prompts"] == ["a red bird"] * 2
    # Folder moved away and no prompts given: say what to pass.
    (folder_ckpt / "folder").rename(folder_ckpt / "moved")
    try:
        with pytest.raises(ConfigError, match="give prompts="):
            generate(gen_cfg(ckpt, tmp_path, f"paths.data_dir={tmp_path}/nowhere"))
    finally:
        (folder_ckpt / "moved").rename(folder_ckpt / "folder")
