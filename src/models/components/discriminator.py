"""Discriminator: conv features of the image, judged unconditionally and against the text by projection."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from src.models.components.layers import maybe_sn, plan_resolution


class ResDown(nn.Module):
    """Residual /2 block (SNGAN): [ReLU]-conv3-ReLU-conv3-avgpool, plus 1x1-conv-avgpool shortcut."""

    def __init__(self, cin: int, cout: int, sn: bool, preact: bool = True) -> None:
        super().__init__()
        self.preact = preact
        self.c1 = maybe_sn(nn.Conv2d(cin, cout, 3, 1, 1), sn)
        self.c2 = maybe_sn(nn.Conv2d(cout, cout, 3, 1, 1), sn)
        self.skip = maybe_sn(nn.Conv2d(cin, cout, 1), sn)

    def forward(self, h: Tensor) -> Tensor:
        """(N, cin, S, S) -> (N, cout, S/2, S/2)."""
        a = self.c1(F.relu(h) if self.preact else h)
        a = F.avg_pool2d(self.c2(F.relu(a)), 2)
        return a + F.avg_pool2d(self.skip(h), 2)


class Discriminator(nn.Module):
    """Strided-conv features -> global sum pool h; D(x, t) = w.h + <P t, h> (Miyato & Koyama 2018)."""

    def __init__(
        self,
        *,
        text_dim: int = 128,
        image_size: int = 28,
        channels: int = 1,
        base_channels: int = 64,
        spectral_norm: bool = False,
        contrastive_dim: int = 0,
        residual: bool = False,
    ) -> None:
        super().__init__()
        _, n = plan_resolution(image_size)
        if residual:
            blocks: list[nn.Module] = [ResDown(channels, base_channels * 2, spectral_norm, preact=False)]
            blocks += [
                ResDown(base_channels * 2**i, base_channels * 2 ** (i + 1), spectral_norm)
                for i in range(1, n)
            ]
            self.body = nn.Sequential(*blocks, nn.ReLU())
            self._finish(base_channels * 2**n, text_dim, spectral_norm, contrastive_dim)
            return
        layers: list[nn.Module] = [
            maybe_sn(nn.Conv2d(channels, base_channels, 3, 1, 1), spectral_norm),
            nn.LeakyReLU(0.2),
        ]
        width = base_channels
        for _ in range(n):
            layers += [maybe_sn(nn.Conv2d(width, width * 2, 4, 2, 1), spectral_norm), nn.LeakyReLU(0.2)]
            width *= 2
        layers += [maybe_sn(nn.Conv2d(width, width, 3, 1, 1), spectral_norm), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        self._finish(width, text_dim, spectral_norm, contrastive_dim)

    def _finish(self, width: int, text_dim: int, spectral_norm: bool, contrastive_dim: int) -> None:
        self.feature_dim = width
        self.head = maybe_sn(nn.Linear(width, 1), spectral_norm)
        self.project = maybe_sn(nn.Linear(text_dim, width, bias=False), spectral_norm)
        # Heads into a shared space for the image-text contrastive loss (0: off).
        self.contrastive_dim = contrastive_dim
        if contrastive_dim > 0:
            self.image_head = nn.Linear(width, contrastive_dim)
            self.text_head = nn.Linear(text_dim, contrastive_dim)

    def contrastive_pair(self, h: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Image features h (N, F) and text t (N, text_dim) -> both in the contrastive space (N, P)."""
        return self.image_head(h), self.text_head(t)

    def features(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W) in [-1, 1] -> pooled image features (N, feature_dim)."""
        return self.body(x).sum(dim=(2, 3))

    def judge(self, h: Tensor, t: Tensor) -> Tensor:
        """Score precomputed features h (N, F) against text t (N, text_dim) -> logits (N,)."""
        return self.head(h).squeeze(1) + (self.project(t) * h).sum(dim=1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """x: (N, C, H, W), t: (N, text_dim) -> logits (N,)."""
        return self.judge(self.features(x), t)
