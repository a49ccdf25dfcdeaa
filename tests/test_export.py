"""Export: a bundle draws exactly what its checkpoint draws, carries a model card, fails in one clear line
when broken; the shipped MNIST bundle is small and loads."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from src.export import export
from src.generate import generate
from src.serving.bundle import BundleError, load_sampler
from src.serving.sampling import noise
from src.training import train

from conftest import ROOT, TINY, compose_cfg

SHIPPED = ROOT / "models" / "mnist"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A 2-step tiny run, a metrics.json where `src.evaluate hydra.run.dir=<run>/eval` puts it, the bundle."""
    run = tmp_path_factory.mktemp("export_run")
    train(compose_cfg("train", TINY + ["trainer.max_steps=2"], run))
    ckpt = run / "checkpoints" / "last.ckpt"
    (run / "eval").mkdir()
    metrics = {
        "cond_acc": 0.5,
        "cfid": 12.0,
        "heldout_cond_acc": 0.25,
        "heldout_cond_acc_by_group": {"please draw a {index}": 0.25},
        "num_samples": 100,
        "gan_step": 2,
        "ckpt_path": str(ckpt),
    }
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    out = tmp_path_factory.mktemp("bundle")
    return ckpt, export(compose_cfg("export", [f"ckpt_path={ckpt}"], out))


def test_bundle_draws_what_the_checkpoint_draws_and_has_a_card(exported, tmp_path):
    ckpt, res = exported
    assert res["bytes"] < 0.5 * ckpt.stat().st_size  # no discriminator, optimizer state or live weights
    card = res["card_text"]
    assert "| cond_acc | 0.5000 | 0.2500 |" in card and "100 generated images" in card
    assert "| `please draw a {index}` | 0.2500 |" in card and "lowest `please draw a {index}`" in card
    assert "Inception FID/KID were not measured" in card and "(not recorded)" in card  # no .hydra here

    prompts = 'prompts=["a handwritten digit three","seven"]'
    args = [prompts, "n_per_prompt=3", "seed=5", 'interpolate=["digit 1","digit 7"]', "interpolation_steps=4"]
    from_ckpt = generate(compose_cfg("generate", [f"ckpt_path={ckpt}", *args], tmp_path / "ckpt"))
    from_bundle = generate(
        compose_cfg("generate", [f"ckpt_path={res['bundle']}", *args, "gif=true"], tmp_path / "b")
    )
    assert np.array_equal(from_ckpt["images"], from_bundle["images"])
    a, b = (np.asarray(Image.open(r["interpolation"])) for r in (from_ckpt, from_bundle))
    assert np.array_equal(a, b)
    gif = Image.open(from_bundle["gif"])
    assert gif.n_frames == 2 * 4 - 2  # a -> b -> a, ends not repeated


def test_a_checkpoint_is_read_from_disk_once_when_loaded_for_sampling(exported, monkeypatch):
    """load_sampler reads the file once and the factory checks that dict (it used to read it again)."""
    ckpt, _ = exported
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(a[0]) or real_load(*a, **k))
    sampler = load_sampler(ckpt)
    assert len(calls) == 1 and sampler.gan_step == 2


@pytest.mark.parametrize("damage", ["truncated", "architecture", "foreign"])
def test_a_broken_bundle_is_one_clear_line(exported, tmp_path, damage):
    _, res = exported
    bad = tmp_path / "bad.pt"
    if damage == "truncated":
        data = res["bundle"].read_bytes()
        bad.write_bytes(data[: len(data) // 2])
        expect = "truncated"
    elif damage == "architecture":
        data = torch.load(res["bundle"], weights_only=True)
        wider = dict(data["generator"]["config"], base_channels=16)
        from hydra.utils import instantiate

        data["generator"]["state_dict"] = instantiate(wider).state_dict()
        torch.save(data, bad)
        expect = "generator weights come from another architecture than FiLMGenerator"
    else:
        torch.save({"weight": torch.zeros(3)}, bad)
        expect = "neither a PixelGAN bundle nor a PixelGAN checkpoint"
    with pytest.raises(BundleError, match=expect) as err:
        generate(compose_cfg("generate", [f"ckpt_path={bad}"], tmp_path / "out"))
    assert "\n" not in str(err.value) and str(bad) in str(err.value)
    if damage == "truncated":  # and from the command line: one `error:` line, no traceback
        proc = subprocess.run(
            [sys.executable, "-m", "src.generate", f"ckpt_path={bad}", f"hydra.run.dir={tmp_path / 'cli'}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {bad} is not a readable PixelGAN")


def test_shipped_mnist_bundle_is_small_documented_and_draws_distinct_digits():
    bundle = SHIPPED / "bundle.pt"
    assert bundle.stat().st_size <= 10 * 2**20
    card = (SHIPPED / "MODEL_CARD.md").read_text()
    assert (
        "python -m src.train" in card and "python -m src.evaluate" in card and "python -m src.export" in card
    )
    sampler = load_sampler(bundle)
    z = noise(16, sampler.z_dim, seed=0)
    zero, seven = (
        sampler(["a handwritten digit zero"] * 16, z),
        sampler(["a handwritten digit seven"] * 16, z),
    )
    assert zero.shape == (16, 1, 28, 28) and zero.min() >= -1 and zero.max() <= 1
    # Same noise, different prompt: the pictures differ clearly, not by rounding.
    assert (zero - seven).abs().mean() > 0.1


def test_card_of_a_scenes_model_lists_the_scene_categories_beside_the_ceiling():
    from src.serving.card import _limits, _metrics
    from src.serving.provenance import Evaluation

    m = {"num_samples": 100, "gan_step": 7, "cfid": 40.0, "precision": 0.5, "recall": 0.4}
    m |= {"scene/colour": 0.25, "scene_heldout/colour": 0.2, "ceiling/colour": 0.97, "scene/overall": 0.1}
    m |= {"scene/relative_to_ceiling": 0.1, "ceiling/overall": 0.96}
    ev = Evaluation(Path("metrics.json"), m, None, {})
    card = "\n".join(_metrics(ev))
    assert "| colour | 0.2500 | 0.2000 | 0.9700 |" in card
    assert "| overall | 0.1000 | - | 0.9600 |" in card and "relative_to_ceiling" not in card
    assert any("scene reader" in line for line in _limits({}, ev, []))


def test_card_recipe_names_the_mode_seeking_bound_when_set():
    from src.serving.card import _recipe

    run = {"loss": {"terms": {"mode_seeking": 0.3, "mode_seeking_bound": 0.072}}}
    assert any("mode_seeking 0.3, mode_seeking_bound 0.072" in line for line in _recipe(run, 7))
    run["loss"]["terms"]["mode_seeking_bound"] = 0.0
    assert not any("mode_seeking_bound" in line for line in _recipe(run, 7))


def test_saved_files_get_the_usual_mode_not_a_private_one(tmp_path):
    """Bundles are shared: the atomic save (temp file + rename) must not leave mkstemp's 0600 behind."""
    import os

    from src.utils.torch_files import atomic_torch_save

    old = os.umask(0o022)
    try:
        atomic_torch_save({"x": torch.zeros(1)}, tmp_path / "bundle.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "bundle.pt").stat().st_mode & 0o777 == 0o644
