"""Scene evaluation: the reference reader, per-category scoring against its ceiling, the cache and the guard.

The digits are scikit-learn's bundled set, so nothing here needs MNIST files; the reader is trained once
(a few seconds) and shared by the tests of this module.
"""

from __future__ import annotations

import pytest
import torch

from src.data.scene_data import SceneDataModule
from src.data.scenes import EMPTY, DigitPool, make_scenes, render_scenes
from src.data.sources import load_digits
from src.metrics import scene_eval
from src.metrics.classifier import ClassifierSettings
from src.metrics.eval_settings import EvalSettings
from src.metrics.evaluator import evaluator_for
from src.metrics.scene_eval import SceneEvaluator, evaluate_generator, scene_table
from src.metrics.scene_prompts import CATEGORIES
from src.metrics.scene_reader import (
    ReaderSettings,
    WeakReader,
    cached_reader,
    cell_crops,
    read_accuracy,
    reader_path,
)
from src.utils.config import ConfigError

SIZE = 16
# No jitter: scikit-learn's 8x8 digits are few, and the test only asks that real scenes be read.
QUICK = ReaderSettings(
    steps=300,
    batch_size=64,
    width=16,
    train_scenes=1500,
    test_scenes=300,
    rotate=0,
    scale=0,
    shift=0,
    dim=0,
    noise=0,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # On a busy two-core machine two threads run these small nets many times slower than one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pools() -> tuple[DigitPool, DigitPool]:
    return tuple(DigitPool(*load_digits(".", train=t), SIZE) for t in (True, False))


@pytest.fixture(scope="module")
def reader(pools, tmp_path_factory):
    return cached_reader(tmp_path_factory.mktemp("reader"), "digits", pools, SIZE, QUICK)


def scene_evaluator(reader, pools, n: int = 140) -> SceneEvaluator:
    model, meta = reader
    settings = EvalSettings(num_samples=n, heldout=True, seed=0)
    return SceneEvaluator(
        reader=model, reader_meta=meta, test_pool=pools[1], image_size=SIZE, settings=settings, progress=False
    )


def renderer(pools, edit=lambda layout: layout):
    """A sampler that paints each prompt's layout, changed by `edit` ((4, 2) -> (4, 2)), with test digits."""

    def sample(prompts):
        layouts = torch.stack([edit(p.layout.clone()) for p in prompts])
        return render_scenes(layouts, pools[1], SIZE, torch.Generator().manual_seed(7))

    return sample


def test_cells_are_cut_in_cell_order():
    images = torch.zeros(1, 3, SIZE, SIZE, dtype=torch.uint8)
    images[0, 1, 2, 12] = 255  # top right
    images[0, 0, 14, 3] = 9  # bottom left
    crops = cell_crops(images)
    assert crops.shape == (4, 3, 8, 8)
    assert crops[1, 1, 2, 4] == 255 and crops[2, 0, 6, 3] == 9
    assert int(crops.sum()) == 255 + 9


def test_reader_reads_real_scenes_it_never_saw(reader, pools):
    model, meta = reader
    assert meta["cell_accuracy"] >= 0.95
    images, layouts = make_scenes(400, pools[1], SIZE, seed=123, heldout_pairs=False)
    acc = read_accuracy(model, images, layouts)
    assert acc["cell_accuracy"] >= 0.95
    read = model.read(images)
    empty = layouts[..., 0] == EMPTY
    assert (read[..., 0][empty] == EMPTY).float().mean() >= 0.99
    inked = ~empty & (read[..., 0] != EMPTY)
    assert (read[..., 1][inked] == layouts[..., 1][inked]).float().mean() >= 0.98  # colours are easy


def test_perfect_sampler_scores_near_the_ceiling(reader, pools):
    metrics = scene_evaluator(reader, pools).score(renderer(pools))
    for prefix in ("scene", "scene_heldout"):
        ceiling = "ceiling_heldout" if prefix == "scene_heldout" else "ceiling"
        assert metrics[f"{ceiling}/overall"] >= 0.8
        assert abs(metrics[f"{prefix}/overall"] - metrics[f"{ceiling}/overall"]) <= 0.08
        assert metrics[f"{prefix}/relative_to_ceiling"] >= 0.9
    assert set(CATEGORIES) <= {k.split("/")[1] for k in metrics if k.startswith("scene/")}
    assert metrics["scene/seen_pairs"] == pytest.approx(
        (metrics["scene/colour"] + metrics["scene/colour_attribution"]) / 2
    )
    # The same digits as the crop reference, drawn again: close in the reader's feature space.
    assert metrics["precision"] >= 0.7 and metrics["recall"] >= 0.7
    assert "heldout_pairs" in scene_table(metrics)


def _swap_colours(layout):
    inked = torch.nonzero(layout[:, 0] != EMPTY).flatten()
    layout[inked, 1] = layout[inked.roll(1), 1]
    return layout


def _mirror_cells(layout):  # top left <-> bottom right, top right <-> bottom left: every relation flips
    return layout.flip(0)


def _extra_digit(layout):
    empty = torch.nonzero(layout[:, 0] == EMPTY).flatten()
    if len(empty):
        layout[empty[0]] = torch.tensor([3, 0])
    return layout


@pytest.mark.parametrize(
    ("edit", "broken", "intact"),
    [
        (_swap_colours, ("colour_attribution",), ("single", "two", "counting", "position")),
        (_mirror_cells, ("position",), ("single", "two", "counting", "colour", "colour_attribution")),
        (_extra_digit, ("single", "two", "colour", "position", "colour_attribution", "heldout_pairs"), ()),
    ],
)
def test_wrong_layouts_score_zero_where_they_are_wrong(reader, pools, edit, broken, intact):
    metrics = scene_evaluator(reader, pools).score(renderer(pools, edit))
    for cat in broken:
        assert metrics[f"scene/{cat}"] <= 0.1, cat
        assert metrics[f"scene_heldout/{cat}"] <= 0.1, cat
    for cat in intact:
        assert metrics[f"scene/{cat}"] >= metrics[f"ceiling/{cat}"] - 0.2, cat


def test_evaluate_generator_checks_the_sampler_and_returns_every_figure(reader, pools, monkeypatch, tmp_path):
    monkeypatch.setattr(scene_eval, "load_mnist", lambda root, train, download: load_digits(root, train))
    monkeypatch.setattr(scene_eval, "cached_reader", lambda *args, **kw: reader)
    metrics = evaluate_generator(
        renderer(pools),
        data_dir=".",
        cache_dir=str(tmp_path),
        image_size=SIZE,
        num_samples=70,
        progress=False,
    )
    for prefix in ("scene", "scene_heldout", "ceiling"):
        for name in (*CATEGORIES, "overall", "seen_pairs"):
            assert 0.0 <= metrics[f"{prefix}/{name}"] <= 1.0
    assert metrics["reader/cell_accuracy"] == reader[1]["cell_accuracy"]
    assert metrics["cfid"] >= 0 and metrics["heldout_cfid"] >= 0
    grey = lambda prompts: torch.zeros(len(prompts), 1, SIZE, SIZE, dtype=torch.uint8)  # noqa: E731
    with pytest.raises(ValueError, match="uint8 images"):
        evaluate_generator(grey, data_dir=".", cache_dir=str(tmp_path), image_size=SIZE, num_samples=7)


def test_scene_datamodule_names_its_evaluator(reader, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(scene_eval, "cached_reader", lambda *args, **kw: reader)
    dm = SceneDataModule(digit_source=load_digits, data_dir=".", image_size=SIZE, num_scenes=10)
    evaluator = evaluator_for(dm, EvalSettings(num_samples=14, heldout=False), tmp_path, ClassifierSettings())
    assert isinstance(evaluator, SceneEvaluator) and list(evaluator.prompts) == [False]
    assert "inception" not in capsys.readouterr().err
    # With inception=true (evaluate's default) the run says the Inception metrics do not apply to scenes.
    evaluator_for(
        dm, EvalSettings(num_samples=14, heldout=False, inception=True), tmp_path, ClassifierSettings()
    )
    assert "no Inception metrics (inception=true)" in capsys.readouterr().err


def test_cache_key_follows_training_settings_and_data(pools, tmp_path):
    a = make_scenes(20, pools[0], SIZE, seed=0, heldout_pairs=False)
    b = make_scenes(20, pools[0], SIZE, seed=1, heldout_pairs=False)
    key = reader_path(tmp_path, "digits", *a, QUICK)
    assert reader_path(tmp_path, "digits", *a, ReaderSettings(**{**QUICK.__dict__})) == key
    assert reader_path(tmp_path, "digits", *a, ReaderSettings(**{**QUICK.__dict__, "steps": 151})) != key
    assert reader_path(tmp_path, "digits", *a, ReaderSettings(**{**QUICK.__dict__, "noise": 0.0})) != key
    assert reader_path(tmp_path, "digits", *b, QUICK) != key
    # The accuracy guard does not change the weights, so it does not change the key.
    assert (
        reader_path(tmp_path, "digits", *a, ReaderSettings(**{**QUICK.__dict__, "min_accuracy": 0.5})) == key
    )


def test_cached_reader_is_loaded_not_retrained(reader, pools, tmp_path, monkeypatch):
    settings = ReaderSettings(steps=2, width=4, train_scenes=50, test_scenes=20, on_low_accuracy="warn")
    with pytest.warns(UserWarning):
        first, _ = cached_reader(tmp_path, "digits", pools, SIZE, settings)
    monkeypatch.setattr("src.metrics.scene_reader.train_reader", lambda *a, **k: pytest.fail("retrained"))
    with pytest.warns(UserWarning):
        again, _ = cached_reader(tmp_path, "digits", pools, SIZE, settings)
    assert torch.equal(first.digit_head.weight, again.digit_head.weight)


def test_weak_reader_is_refused_in_one_line(pools, tmp_path):
    weak = ReaderSettings(steps=2, width=4, train_scenes=50, test_scenes=50, min_accuracy=0.99)
    with pytest.raises(WeakReader, match="classifier_steps") as err:
        cached_reader(tmp_path, "digits", pools, SIZE, weak)
    assert isinstance(err.value, ConfigError) and "\n" not in str(err.value)
    # Loading the cached weak reader is refused too.
    with pytest.raises(WeakReader):
        cached_reader(tmp_path, "digits", pools, SIZE, weak)


def test_reader_and_classifier_training_leave_the_global_rng_alone(pools):
    """A cold cache trains them inside a training run, whose noise comes from the global RNG."""
    from src.metrics.classifier import ClassifierSettings, train_classifier
    from src.metrics.scene_reader import train_reader

    images, layouts = make_scenes(40, pools[0], SIZE, seed=1, heldout_pairs=False)
    state = torch.get_rng_state()
    train_reader(images, layouts, ReaderSettings(steps=2, width=4, batch_size=16))
    labels = layouts[:, 0, 0].clamp_min(0)
    train_classifier(images[:, :1], labels, 10, ClassifierSettings(steps=2, batch_size=8))
    assert torch.equal(torch.get_rng_state(), state)


def test_reader_guard_reads_the_digits_not_the_empty_cells(reader, pools):
    """A reader that calls every cell empty is right on ~40% of cells but on no digit."""
    model, _ = reader
    images, layouts = make_scenes(200, pools[1], SIZE, seed=7, heldout_pairs=False)

    class Blind:
        def read(self, x):
            return torch.full((len(x), 4, 2), EMPTY)

    acc = read_accuracy(Blind(), images, layouts)
    assert acc["cell_accuracy"] > 0.3 and acc["inked_cell_accuracy"] == 0.0
    assert read_accuracy(model, images, layouts)["inked_cell_accuracy"] >= 0.9
