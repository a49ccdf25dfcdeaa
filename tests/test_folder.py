"""Captioned folders: the three caption layouts, resizing, and bad folders named item by item."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from src.data.captions import CaptionTable
from src.data.folder import FolderDataError, load_captioned_folder
from src.data.sources import DataFilesMissing
from src.training import train


def make_images(root, names, size=(40, 20)):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(root / name)


@pytest.mark.parametrize("layout", ["jsonl", "csv", "txt"])
def test_three_caption_layouts(tmp_path, layout):
    names = ["a.png", "sub/b.jpg", "c.png"]
    make_images(tmp_path, names)
    caps = {"a.png": ["a red bird", "a small red bird"], "sub/b.jpg": ["a yellow flower"], "c.png": ["a cat"]}
    if layout == "jsonl":
        lines = [
            json.dumps({"file": "a.png", "captions": caps["a.png"]}),
            json.dumps({"file": "sub/b.jpg", "caption": "a yellow flower"}),
            json.dumps({"file": "c.png", "caption": "a cat"}),
        ]
        (tmp_path / "captions.jsonl").write_text("\n".join(lines))
    elif layout == "csv":
        rows = ["file,caption"] + [f"{f},{c}" for f, cs in caps.items() for c in cs]
        (tmp_path / "captions.csv").write_text("\n".join(rows))
    else:
        for f, cs in caps.items():
            (tmp_path / f).with_suffix(".txt").write_text("\n".join(cs))
    images, captions = load_captioned_folder(tmp_path, image_size=16, channels=3)
    assert images.shape == (3, 3, 16, 16) and images.dtype == torch.uint8
    assert captions == [caps["a.png"], caps["c.png"], caps["sub/b.jpg"]]  # sorted by path


def test_resize_centre_crops_the_shorter_side(tmp_path):
    img = np.zeros((20, 40), dtype=np.uint8)
    img[:, 10:30] = 255  # a bright centre, dark left/right margins that the crop must remove
    Image.fromarray(img).save(tmp_path / "x.png")
    (tmp_path / "x.txt").write_text("stripe")
    images, _ = load_captioned_folder(tmp_path, image_size=10, channels=1)
    assert images.shape == (1, 1, 10, 10) and images.float().mean() > 250


def test_caption_table_draws_own_and_other_captions():
    table = CaptionTable([["a", "b"], ["c"], ["d", "e", "f"]])
    assert table.bank() == ["a", "b", "c", "d", "e", "f"]
    g = torch.Generator().manual_seed(0)
    idx = torch.tensor([0, 1, 2] * 100)
    own = table.draw(idx, idx, g)
    bank = table.bank()
    allowed = {0: {"a", "b"}, 1: {"c"}, 2: {"d", "e", "f"}}
    assert all(bank[c] in allowed[i] for c, i in zip(own.tolist(), idx.tolist()))
    assert {bank[c] for c in own.tolist()} == set(bank)
    other = table.mismatch(idx, idx, g)
    assert all(bank[c] not in allowed[i] for c, i in zip(other.tolist(), idx.tolist()))


def test_empty_folder(tmp_path):
    with pytest.raises(FolderDataError, match="holds no images"):
        load_captioned_folder(tmp_path, 16, 3)
    with pytest.raises(DataFilesMissing, match="does not exist"):
        load_captioned_folder(tmp_path / "nope", 16, 3)


def test_missing_captions_are_named(tmp_path):
    make_images(tmp_path, ["a.png", "b.png", "c.png"])
    (tmp_path / "captions.csv").write_text("file,caption\na.png,a thing\n")
    with pytest.raises(FolderDataError, match=r"2 image\(s\) .* no caption: b.png, c.png"):
        load_captioned_folder(tmp_path, 16, 3)


def test_unreadable_images_are_named(tmp_path):
    make_images(tmp_path, ["good.png"])
    (tmp_path / "broken.png").write_bytes(b"definitely not a png")
    for stem in ("good", "broken"):
        (tmp_path / f"{stem}.txt").write_text("caption")
    with pytest.raises(FolderDataError, match=r"1 unreadable image\(s\) .*: broken.png"):
        load_captioned_folder(tmp_path, 16, 3)


def test_malformed_jsonl_line_is_named(tmp_path):
    make_images(tmp_path, ["a.png"])
    (tmp_path / "captions.jsonl").write_text('{"file": "a.png", "caption": "ok"}\n{"oops": 1}\n')
    with pytest.raises(FolderDataError, match="line 2"):
        load_captioned_folder(tmp_path, 16, 3)


def test_folder_dataset_trains(tiny_cfg, tmp_path):
    names = [f"img{i}.png" for i in range(24)]
    make_images(tmp_path / "folder", names)
    for i, n in enumerate(names):
        (tmp_path / "folder" / n).with_suffix(".txt").write_text(
            f"picture number {i}\nanother caption {i % 3}"
        )
    cfg = tiny_cfg(
        "dataset=folder", f"paths.data_dir={tmp_path}/folder", "dataset.image_size=16", "trainer.max_steps=2"
    )
    metrics, objs = train(cfg)
    assert objs["model"].gan_step == 2
    assert objs["model"].caption_bank.shape[0] == 24 + 3


def test_folder_smaller_than_one_step_fails_before_training(tiny_cfg, tmp_path):
    from src.data.datamodule import TooFewImages

    names = [f"img{i}.png" for i in range(5)]
    make_images(tmp_path / "folder", names)
    for n in names:
        (tmp_path / "folder" / n).with_suffix(".txt").write_text("a picture")
    folder = ["dataset=folder", f"paths.data_dir={tmp_path}/folder", "dataset.image_size=16"]
    cfg = tiny_cfg(*folder, "loss.n_critic=1")
    with pytest.raises(TooFewImages, match=r"5 images cannot fill one step of 8 .* set dataset.batch_size=5"):
        train(cfg)
    assert not (tmp_path / "run").exists()  # refused before any run file is written
