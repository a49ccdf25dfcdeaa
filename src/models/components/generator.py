"""Generator: noise z and a text embedding -> image in [-1, 1] via transposed-conv upsampling."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.models.components.layers import plan_resolution


class FiLM(nn.Module):
    """Text-conditioned batch norm: BN without affine, then (1 + gamma(t)) * h + beta(t)."""

    def __init__(self, channels: int, text_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.affine = nn.Linear(text_dim, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, h: Tensor, t: Tensor) -> Tensor:
        """h: (N, C, H, W), t: (N, text_dim) -> (N, C, H, W)."""
        gamma, beta = self.affine(t)[:, :, None, None].chunk(2, dim=1)
        return self.bn(h) * (1.0 + gamma) + beta


def _apply(norm: nn.Module, h: Tensor, t: Tensor) -> Tensor:
    return norm(h, t) if isinstance(norm, FiLM) else norm(h)


class ResUp(nn.Module):
    """Residual x2 up-block (BigGAN-style): norm-ReLU-ConvT-norm-ReLU-conv3, plus nearest-up 1x1 shortcut."""

    def __init__(self, cin: int, cout: int, norm: Callable[[int], nn.Module]) -> None:
        super().__init__()
        self.n1, self.n2 = norm(cin), norm(cout)
        self.up = nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False)
        self.conv = nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, h: Tensor, t: Tensor) -> Tensor:
        """h: (N, cin, S, S), t: (N, text_dim) -> (N, cout, 2S, 2S)."""
        a = self.up(torch.relu(_apply(self.n1, h, t)))
        a = self.conv(torch.relu(_apply(self.n2, a, t)))
        return a + self.skip(F.interpolate(h, scale_factor=2.0, mode="nearest"))


class Generator(nn.Module):
    """DCGAN-style G sized from the data set (28/32 px, 1/3 channels), optionally FiLM-modulated by text."""

    def __init__(
        self,
        *,
        z_dim: int = 128,
        text_dim: int = 128,
        image_size: int = 28,
        channels: int = 1,
        base_channels: int = 64,
        film: bool = False,
        cond_aug: bool = False,
        residual: bool = False,
        text_input: bool = True,
    ) -> None:
        super().__init__()
        if not (text_input or film):
            raise ValueError("generator needs the text somewhere: text_input=true or film=true")
        s0, n = plan_resolution(image_size)
        self.z_dim, self.image_size, self.channels, self.s0 = z_dim, image_size, channels, s0
        widths = [base_channels * 2 ** (n - i) for i in range(n + 1)]
        # text_input=false: z alone seeds the image and the text enters only through FiLM (DF-GAN style).
        self.text_input = text_input
        self.fc = nn.Linear(z_dim + (text_dim if text_input else 0), widths[0] * s0 * s0)
        self.norms = nn.ModuleList()
        self.ups = nn.ModuleList()

        def norm(c: int) -> nn.Module:
            return FiLM(c, text_dim) if film else nn.BatchNorm2d(c)

        self.residual = residual
        if residual:
            self.ups.extend(ResUp(widths[i], widths[i + 1], norm) for i in range(n))
            self.norms.append(norm(widths[-1]))
        else:
            for i in range(n + 1):
                self.norms.append(norm(widths[i]))
                if i < n:
                    self.ups.append(nn.ConvTranspose2d(widths[i], widths[i + 1], 4, 2, 1, bias=False))
        self.film = film
        # Conditioning augmentation (StackGAN): sample the text code from N(mu(t), sigma(t)^2) in training.
        self.cond_aug = cond_aug
        self.ca = nn.Linear(text_dim, 2 * text_dim) if cond_aug else None
        self.kl = torch.zeros(())
        self.to_rgb = nn.Conv2d(widths[-1], channels, 3, 1, 1)

    def _norm(self, i: int, h: Tensor, t: Tensor) -> Tensor:
        return torch.relu(_apply(self.norms[i], h, t))

    def forward(self, z: Tensor, t: Tensor) -> Tensor:
        """z: (N, z_dim), t: (N, text_dim) -> images (N, channels, image_size, image_size) in [-1, 1]."""
        if self.ca is not None:
            mu, logvar = self.ca(t).chunk(2, dim=1)
            logvar = logvar.clamp(-10, 10)
            t = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
            # KL(N(mu, sigma^2) || N(0, I)), averaged over the batch: the G loss adds it.
            self.kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
        h = self.fc(torch.cat([z, t], dim=1) if self.text_input else z).view(z.shape[0], -1, self.s0, self.s0)
        if self.residual:
            for block in self.ups:
                h = block(h, t)
            return torch.tanh(self.to_rgb(self._norm(0, h, t)))
        h = self._norm(0, h, t)
        for i, up in enumerate(self.ups, start=1):
            h = self._norm(i, up(h), t)
        return torch.tanh(self.to_rgb(h))
