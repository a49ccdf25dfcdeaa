"""Metric math: FID closed forms, KID unbiasedness, precision/recall extremes."""

import pytest
import torch

from src.metrics.features import (
    fid_from_features,
    frechet_distance,
    kid_from_features,
    mean_cov,
    precision_recall,
)


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
