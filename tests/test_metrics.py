"""Metric math (FID closed forms, KID unbiasedness, precision/recall extremes); the reference classifier."""

import pytest
import torch

import src.metrics.classifier_cache as cc
from src.data.datamodule import resize_uint8
from src.data.sources import load_digits
from src.metrics.classifier import ClassifierSettings, augment
from src.metrics.classifier_cache import cache_path, cached_classifier
from src.metrics.features import (
    fid_from_features,
    frechet_distance,
    kid_from_features,
    mean_cov,
    precision_recall,
)

from conftest import run_together


def test_fid_of_a_set_with_itself_is_zero():
    f = torch.randn(500, 16)
    assert fid_from_features(f, f) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_closed_form_for_gaussians():
    # Diagonal covariances: FID = |dmu|^2 + sum (sqrt s1 - sqrt s2)^2
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    s1, s2 = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 1.0])
    expected = 1 + 0 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 1) ** 2
    assert frechet_distance(mu1, torch.diag(s1), mu2, torch.diag(s2)) == pytest.approx(expected, rel=1e-9)
    # A full (rotated) covariance against itself shifted: only the mean term remains.
    q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))
    cov = q @ torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)) @ q.T
    assert frechet_distance(torch.zeros(4), cov, torch.ones(4), cov) == pytest.approx(4.0, abs=1e-8)


def test_fid_of_sampled_gaussians_matches_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 3, generator=g, dtype=torch.float64)
    b = 2.0 * torch.randn(20000, 3, generator=g, dtype=torch.float64) + 1.0
    expected = 3 * 1.0 + 3 * (1 - 2) ** 2  # |dmu|^2 = 3, per-dim (sqrt 1 - sqrt 4)^2 = 1
    assert fid_from_features(a, b) == pytest.approx(expected, rel=0.03)


def test_mean_cov():
    f = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    mu, cov = mean_cov(f)
    assert mu.tolist() == [2.0, 4.0] and cov.tolist() == [[2.0, 4.0], [4.0, 8.0]]


def test_kid_unbiased_for_same_distribution():
    """Unbiased MMD^2: over independent draws from one distribution the mean is 0 within noise."""
    g = torch.Generator().manual_seed(1)
    vals = torch.tensor(
        [
            kid_from_features(
                torch.randn(100, 8, generator=g), torch.randn(100, 8, generator=g), subset_size=100, subsets=1
            )[0]
            for _ in range(60)
        ]
    )
    sem = vals.std() / len(vals) ** 0.5
    assert abs(vals.mean()) < 3 * sem
    assert (vals < 0).any()  # a biased (V-statistic) estimate would never go below 0
    shifted = kid_from_features(
        torch.randn(200, 8, generator=g), torch.randn(200, 8, generator=g) + 1.0, subset_size=100, subsets=20
    )[0]
    assert shifted > 10 * float(vals.std())


def test_kid_known_case():
    # 1-D features, all real = 0 and all fake = 1: k(0,0)=1, k(1,1)=8, k(0,1)=1 -> MMD^2 = 1 + 8 - 2 = 7.
    mean, std = kid_from_features(torch.zeros(10, 1), torch.ones(10, 1), subset_size=10, subsets=3)
    assert mean == pytest.approx(7.0) and std == pytest.approx(0.0)


def test_precision_recall_extremes():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(500, 4, generator=g)
    p, r = precision_recall(real, real.clone())
    assert p == pytest.approx(1.0) and r == pytest.approx(1.0)
    p, r = precision_recall(real, real + 100.0)
    assert p == 0.0 and r == 0.0
    # Mode collapse: fakes all near one real point -> high precision, low recall.
    collapsed = real[:1] + 0.01 * torch.randn(500, 4, generator=g)
    p, r = precision_recall(real, collapsed)
    assert p > 0.9 and r < 0.1


def test_our_fid_matches_torchmetrics():
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Flat(torch.nn.Module):
        num_features = 12

        def forward(self, x):
            return x.float().flatten(1)[:, :12]

    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (300, 3, 2, 2), dtype=torch.uint8, generator=g)
    fake = (real.float() * 0.7 + 20).to(torch.uint8)
    tm = FrechetInceptionDistance(feature=Flat())
    tm.update(real, real=True)
    tm.update(fake, real=False)
    ours = fid_from_features(real.float().flatten(1)[:, :12], fake.float().flatten(1)[:, :12])
    assert ours == pytest.approx(float(tm.compute()), rel=1e-3)


# --- reference classifier -------------------------------------------------------------------------


def _digits(size: int = 28):
    (xtr, ytr), (xte, yte) = load_digits(".", train=True), load_digits(".", train=False)
    return (resize_uint8(xtr, size), ytr), (resize_uint8(xte, size), yte)


def test_digits_reference_classifier_scores_97_percent_on_held_out_digits(tmp_path):
    """A quarter of the default steps already clears 0.97 on the 360 real test digits (was 0.64)."""
    train_split, test_split = _digits()
    settings = ClassifierSettings(steps=150)
    cached_classifier(tmp_path, "digits", train_split, test_split, 10, settings)
    (path,) = tmp_path.glob("classifier_digits_28px_*.pt")
    meta = torch.load(path, weights_only=True)["meta"]
    assert meta["test_accuracy"] >= 0.97
    assert meta["settings"]["steps"] == 150


def test_classifier_cache_key_follows_settings_and_data():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (20, 1, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.arange(20) % 10
    base = cache_path("c", "digits", images, labels, ClassifierSettings())
    assert base.name.startswith("classifier_digits_8px_")
    # Every setting that changes the weights, and the data itself, gives a new file ...
    for changed in (dict(steps=601), dict(lr=1e-3), dict(width=16), dict(seed=1), dict(rotate=0.0)):
        assert cache_path("c", "digits", images, labels, ClassifierSettings(**changed)) != base
    edited = images.clone()
    edited[0, 0, 0, 0] ^= 1
    assert cache_path("c", "digits", edited, labels, ClassifierSettings()) != base
    assert cache_path("c", "digits", images, labels.roll(1), ClassifierSettings()) != base
    # ... while the accuracy guard only decides whether the cached one is trusted.
    guard = ClassifierSettings(min_accuracy=0.5, on_low_accuracy="warn")
    assert cache_path("c", "digits", images, labels, guard) == base


def test_weak_classifier_is_refused_or_warned_and_the_verdict_is_cached(tmp_path, monkeypatch, capsys):
    (xtr, ytr), (xte, yte) = _digits(size=8)
    weak = ClassifierSettings(steps=2, batch_size=8)
    with pytest.raises(cc.WeakClassifier, match=r"scores 0\.\d+ on real test .*classifier_steps, now 2"):
        cc.cached_classifier(tmp_path, "digits", (xtr, ytr), (xte, yte), 10, weak)
    # The second call reads the cached verdict instead of training again.
    monkeypatch.setattr(cc, "train_classifier", lambda *a, **k: pytest.fail("trained twice"))
    with pytest.raises(cc.WeakClassifier) as err:
        cc.cached_classifier(tmp_path, "digits", (xtr, ytr), (xte, yte), 10, weak)
    assert "\n" not in str(err.value)
    lenient = ClassifierSettings(steps=2, batch_size=8, on_low_accuracy="warn")
    with pytest.warns(UserWarning, match="scores"):
        model = cc.cached_classifier(tmp_path, "digits", (xtr, ytr), (xte, yte), 10, lenient)
    assert model.logits_head.out_features == 10
    assert "WARNING: the reference classifier for digits scores" in capsys.readouterr().err


def test_augment_is_identity_at_zero_strength_and_fills_background():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 12, 12) * 2 - 1
    assert torch.allclose(augment(x, g, rotate=0.0, scale=0.0, shift=0.0), x, atol=1e-5)
    # A bright image shifted by up to 3 px: some border pixels become background (-1), none leave [-1, 1].
    out = augment(torch.ones(64, 1, 12, 12), g, rotate=0.0, scale=0.0, shift=3.0)
    assert out.min() >= -1 - 1e-5 and out.max() <= 1 + 1e-5
    assert (out[:, :, :, 0] < 0).any() or (out[:, :, :, -1] < 0).any()


# A process that finds the cache empty (a Ray trial, a DDP rank): it logs each training, held for a second so
# that the other arrives while it trains.
_CHILD = """
import sys, time, torch
import src.metrics.classifier_cache as cc
from src.metrics.classifier import ClassifierSettings
cache_dir, log = sys.argv[1], sys.argv[2]
real = cc.train_classifier
def logged(*args, **kwargs):
    with open(log, "a") as f:
        f.write("trained\\n")
    time.sleep(1.0)
    return real(*args, **kwargs)
cc.train_classifier = logged
g = torch.Generator().manual_seed(0)
images = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8, generator=g)
labels = torch.arange(40) % 10
settings = ClassifierSettings(steps=2, batch_size=8, min_accuracy=0.0)
cc.cached_classifier(cache_dir, "digits", (images, labels), (images, labels), 10, settings)
"""


def test_processes_starting_together_train_the_classifier_once(tmp_path):
    """Two processes with an empty cache: one trains, the other waits and loads (both trained before)."""
    log = tmp_path / "log.txt"
    run_together(_CHILD, str(tmp_path), str(log))
    assert log.read_text().splitlines() == ["trained"]
    assert len(list(tmp_path.glob("classifier_digits_8px_*.pt"))) == 1
