"""Distribution metrics on feature vectors: FID, KID, precision/recall. Pure functions of tensors."""

from __future__ import annotations

import torch
from torch import Tensor


def mean_cov(features: Tensor) -> tuple[Tensor, Tensor]:
    """(N, D) -> mean (D,) and unbiased covariance (D, D), in float64."""
    f = features.double()
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (f.shape[0] - 1)


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)); the trace of the root from eigenvalues of S1 S2."""
    mu1, sigma1, mu2, sigma2 = (t.double() for t in (mu1, sigma1, mu2, sigma2))
    eig = torch.linalg.eigvals(sigma1 @ sigma2)
    # S1 S2 is similar to a PSD matrix: its eigenvalues are real and >= 0 up to round-off.
    tr_sqrt = eig.real.clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).pow(2).sum() + sigma1.trace() + sigma2.trace() - 2 * tr_sqrt)


def fid_from_features(real: Tensor, fake: Tensor) -> float:
    """FID between two feature sets (N, D), (M, D)."""
    return frechet_distance(*mean_cov(real), *mean_cov(fake))


def _poly_mmd2_unbiased(x: Tensor, y: Tensor) -> Tensor:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1).pow(3)
    kyy = (y @ y.T / d + 1).pow(3)
    kxy = (x @ y.T / d + 1).pow(3)
    m, n = x.shape[0], y.shape[0]
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return sxx + syy - 2 * kxy.mean()


def kid_from_features(
    real: Tensor, fake: Tensor, subset_size: int = 1000, subsets: int = 100, seed: int = 0
) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2, cubic polynomial kernel,
    averaged over random subsets; returns (mean, std)."""
    m = min(subset_size, real.shape[0], fake.shape[0])
    if m < 2:
        raise ValueError("KID needs at least 2 samples per set")
    g = torch.Generator().manual_seed(seed)
    real, fake = real.double(), fake.double()
    vals = torch.stack(
        [
            _poly_mmd2_unbiased(
                real[torch.randperm(real.shape[0], generator=g)[:m]],
                fake[torch.randperm(fake.shape[0], generator=g)[:m]],
            )
            for _ in range(subsets)
        ]
    )
    return float(vals.mean()), float(vals.std()) if subsets > 1 else 0.0


def _kth_nn_radius(x: Tensor, k: int, chunk: int = 2048) -> Tensor:
    """Distance from each row of x to its k-th nearest other row: (N, D) -> (N,)."""
    out = []
    for part in x.split(chunk):
        d = torch.cdist(part, x)
        out.append(d.kthvalue(k + 1, dim=1).values)  # +1: the row itself is at distance 0
    return torch.cat(out)


def _covered(queries: Tensor, centres: Tensor, radii: Tensor, chunk: int = 2048) -> Tensor:
    """For each query row: does it fall inside any centre's ball? (Q, D), (C, D), (C,) -> (Q,) bool."""
    out = []
    for part in queries.split(chunk):
        out.append((torch.cdist(part, centres) <= radii[None, :]).any(dim=1))
    return torch.cat(out)


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision/recall (Kynkaanniemi et al. 2019) from k-NN manifolds of feature sets."""
    real, fake = real.float(), fake.float()
    precision = _covered(fake, real, _kth_nn_radius(real, k)).float().mean()
    recall = _covered(real, fake, _kth_nn_radius(fake, k)).float().mean()
    return float(precision), float(recall)
