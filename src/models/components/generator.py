"""Generators: noise z and a text embedding -> image in [-1, 1]. One class per variant, chosen by
`_target_` in conf/model/generator/*.yaml; they share the text conditioning and the output layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.models.components.attention import WordAttention, sentence
from src.utils.shapes import plan_resolution


class FiLM(nn.Module):
    """Text-conditioned batch norm: BN without affine, then (1 + gamma(t)) * h + beta(t)."""

    def __init__(self, channels: int, text_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.affine = nn.Linear(text_dim, 2 * channels)
        # Zero init: every block starts as plain BN, so early training does not hinge on the text.
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, h: Tensor, t: Tensor) -> Tensor:
        """h: (N, C, H, W), t: (N, text_dim) -> (N, C, H, W)."""
        gamma, beta = self.affine(t)[:, :, None, None].chunk(2, dim=1)
        return self.bn(h) * (1.0 + gamma) + beta


class Generator(nn.Module):
    """Shared parts: optional conditioning augmentation, z (+ text) -> s0 x s0 map, body, to-RGB.

    `text_in_body`: whether the body reads the text (then `text_input=false` is allowed: DF-GAN style).
    Subclasses build `self.body(h, t)`; `condition` and `synthesize` are separate so a training step can
    read the conditioning-augmentation KL without storing it on the module.
    """

    text_in_body = False

    def __init__(
        self,
        *,
        z_dim: int = 128,
        text_dim: int = 128,
        image_size: int = 28,
        channels: int = 1,
        base_channels: int = 64,
        cond_aug: bool = False,
        text_input: bool = True,
    ) -> None:
        super().__init__()
        if not (text_input or self.text_in_body):
            raise ValueError(f"{type(self).__name__} reads the text only at its input: keep text_input=true")
        s0, n = plan_resolution(image_size)
        self.z_dim, self.text_dim, self.image_size, self.channels, self.s0 = (
            z_dim,
            text_dim,
            image_size,
            channels,
            s0,
        )
        self.widths = [base_channels * 2 ** (n - i) for i in range(n + 1)]
        self.text_input = text_input
        self.fc = nn.Linear(z_dim + (text_dim if text_input else 0), self.widths[0] * s0 * s0)
        # Conditioning augmentation (StackGAN): the text code is drawn from N(mu(t), sigma(t)^2) in training.
        self.ca = nn.Linear(text_dim, 2 * text_dim) if cond_aug else None
        self.build_body()
        self.to_rgb = nn.Conv2d(self.widths[-1], channels, 3, 1, 1)

    def build_body(self) -> None:
        """Create the layers that `body` runs (set on self)."""
        raise NotImplementedError

    def body(self, h: Tensor, t: Tensor) -> Tensor:
        """(N, widths[0], s0, s0), text code (N, text_dim) -> (N, widths[-1], S, S) after its last ReLU."""
        raise NotImplementedError

    def condition(self, t: Tensor) -> tuple[Tensor, Tensor | None]:
        """Text embedding (N, text_dim) -> (text code (N, text_dim), KL to N(0, I) () or None).

        Word-level text (N, 1 + L, text_dim) passes through unchanged (no conditioning augmentation)."""
        if self.ca is None:
            return t, None
        if t.dim() != 2:
            raise ValueError("cond_aug needs sentence-level text: use a text encoder without words=true")
        mu, logvar = self.ca(t).chunk(2, dim=1)
        logvar = logvar.clamp(-10, 10)
        code = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
        return code, kl

    def synthesize(self, z: Tensor, code: Tensor) -> Tensor:
        """z: (N, z_dim), text code (N, text_dim) -> images (N, channels, S, S) in [-1, 1]."""
        x = torch.cat([z, sentence(code)], dim=1) if self.text_input else z
        h = self.fc(x).view(z.shape[0], -1, self.s0, self.s0)
        return torch.tanh(self.to_rgb(self.body(h, self.modulation(z, code))))

    def modulation(self, z: Tensor, code: Tensor) -> Tensor:
        """What the body's stages read: the text code itself (N, text_dim) or (N, 1 + L, text_dim)."""
        return code

    def forward(self, z: Tensor, t: Tensor) -> Tensor:
        """z: (N, z_dim), t: (N, text_dim) -> images (N, channels, S, S) in [-1, 1]."""
        return self.synthesize(z, self.condition(t)[0])


class DCGANGenerator(Generator):
    """DCGAN stages: BN-ReLU then a stride-2 transposed conv; the text enters only at the input."""

    text_in_body = False

    def norm(self, c: int) -> nn.Module:
        """The normalisation layer of a stage with c channels."""
        return nn.BatchNorm2d(c)

    def build_body(self) -> None:
        w = self.widths
        self.norms = nn.ModuleList(self.norm(c) for c in w)
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(w[i], w[i + 1], 4, 2, 1, bias=False) for i in range(len(w) - 1)
        )

    def _act(self, i: int, h: Tensor, t: Tensor) -> Tensor:
        norm = self.norms[i]
        return torch.relu(norm(h, t) if isinstance(norm, FiLM) else norm(h))

    def body(self, h: Tensor, t: Tensor) -> Tensor:
        s = sentence(t)
        h = self._act(0, h, s)
        for i, up in enumerate(self.ups, start=1):
            h = self._act(i, up(h), s)
        return h


class FiLMGenerator(DCGANGenerator):
    """DCGAN stages whose batch norms are modulated by the text (conditional BN / FiLM)."""

    text_in_body = True

    def norm(self, c: int) -> nn.Module:
        return FiLM(c, self.text_dim)


class AttentionGenerator(FiLMGenerator):
    """FiLM stages (sentence) each followed by attention from every position to the words, up to
    `attention_size` pixels: words can place their content ("a red 3 in the top left") where it belongs."""

    def __init__(self, *, attention_size: int = 16, heads: int = 4, **kwargs: object) -> None:
        self.attention_size, self.heads = attention_size, heads
        super().__init__(**kwargs)

    def build_body(self) -> None:
        super().build_body()
        sizes = [self.s0 * 2**i for i in range(len(self.widths))]
        self.attend = nn.ModuleDict(
            {
                str(i): WordAttention(w, self.text_dim, size, self.heads)
                for i, (w, size) in enumerate(zip(self.widths, sizes))
                if size <= self.attention_size
            }
        )

    def body(self, h: Tensor, t: Tensor) -> Tensor:
        s = sentence(t)
        for i in range(len(self.widths)):
            h = self._act(i, h if i == 0 else self.ups[i - 1](h), s)
            if str(i) in self.attend:
                h = self.attend[str(i)](h, t)
        return h


class CellFiLM(FiLM):
    """FiLM with gamma and beta set per cell of a grid x grid split of the map, each from its cell's code."""

    def forward(self, h: Tensor, cells: Tensor) -> Tensor:
        """h: (N, C, H, W), cell codes (N, g, g, code_dim) -> (N, C, H, W) (nearest cell where g does not
        divide H: 7 rows split 4 / 3)."""
        gb = self.affine(cells).permute(0, 3, 1, 2)  # (N, 2C, g, g)
        gamma, beta = F.interpolate(gb, size=h.shape[-2:], mode="nearest").chunk(2, dim=1)
        return self.bn(h) * (1.0 + gamma) + beta


class CellFiLMGenerator(FiLMGenerator):
    """FiLM G whose modulation varies by cell of a grid x grid split of the image: a layout MLP maps
    (z, sentence) to one code per cell, and every stage's FiLM reads each cell's code in that cell, so
    "a 3 and a 5" can be a 3 in one cell and a 5 in another (a global FiLM paints both alike) while z
    still chooses which cell holds which. grid=1 is a FiLM G whose modulation reads z too."""

    def __init__(self, *, grid: int = 2, cell_dim: int = 128, hidden: int = 256, **kwargs: object) -> None:
        self.grid, self.cell_dim = grid, cell_dim  # plain ints, set first: build_body's norms read them
        super().__init__(**kwargs)
        if not 1 <= grid <= self.s0:
            raise ValueError(f"grid={grid} must be between 1 and G's first feature map side ({self.s0})")
        self.layout = nn.Sequential(
            nn.Linear(self.z_dim + self.text_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, grid * grid * cell_dim),
        )

    def norm(self, c: int) -> nn.Module:
        return CellFiLM(c, self.cell_dim)

    def modulation(self, z: Tensor, code: Tensor) -> Tensor:
        """z (N, z_dim), text code (N, text_dim) -> the cell codes the stages read (N, g, g, cell_dim)."""
        x = torch.cat([z, sentence(code)], dim=1)
        return self.layout(x).view(z.shape[0], self.grid, self.grid, self.cell_dim)

    def body(self, h: Tensor, cells: Tensor) -> Tensor:
        """(N, widths[0], s0, s0), cell codes (N, g, g, cell_dim) -> (N, widths[-1], S, S)."""
        h = self._act(0, h, cells)
        for i, up in enumerate(self.ups, start=1):
            h = self._act(i, up(h), cells)
        return h


class ResUp(nn.Module):
    """Residual x2 up-block (BigGAN-style): FiLM-ReLU-ConvT-FiLM-ReLU-conv3, plus nearest-up 1x1 shortcut."""

    def __init__(self, cin: int, cout: int, text_dim: int) -> None:
        super().__init__()
        self.n1, self.n2 = FiLM(cin, text_dim), FiLM(cout, text_dim)
        self.up = nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False)
        self.conv = nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, h: Tensor, t: Tensor) -> Tensor:
        """h: (N, cin, S, S), t: (N, text_dim) -> (N, cout, 2S, 2S)."""
        a = self.up(torch.relu(self.n1(h, t)))
        a = self.conv(torch.relu(self.n2(a, t)))
        return a + self.skip(F.interpolate(h, scale_factor=2.0, mode="nearest"))


class ResidualGenerator(Generator):
    """BigGAN-style residual up-blocks with text-conditional batch norm."""

    text_in_body = True

    def build_body(self) -> None:
        w = self.widths
        self.ups = nn.ModuleList(ResUp(w[i], w[i + 1], self.text_dim) for i in range(len(w) - 1))
        self.norms = nn.ModuleList([FiLM(w[-1], self.text_dim)])

    def body(self, h: Tensor, t: Tensor) -> Tensor:
        t = sentence(t)
        for block in self.ups:
            h = block(h, t)
        return torch.relu(self.norms[0](h, t))
