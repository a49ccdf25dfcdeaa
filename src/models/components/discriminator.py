"""Discriminators: conv features of the image, judged unconditionally and against the text by projection
(Miyato & Koyama 2018). One class per variant, chosen by `_target_` in conf/model/discriminator/*.yaml."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch.nn.functional as F
from torch import Tensor, nn

from src.models.components.attention import WordAttention, sentence
from src.utils.shapes import plan_resolution


@runtime_checkable
class TextDiscriminator(Protocol):
    """What the loss phases need of D; split so one feature pass serves several judgements."""

    def features(self, x: Tensor) -> Tensor:
        """Images x (N, C, H, W) in [-1, 1] -> pooled features (N, F)."""
        ...

    def judge(self, h: Tensor, t: Tensor) -> Tensor:
        """Features h (N, F) and text t (N, text_dim) -> logits (N,)."""
        ...

    def contrastive_pair(self, h: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Features h (N, F), text t (N, text_dim) -> both in the contrastive space (N, P)."""
        ...

    def contrastive_text(self, t: Tensor) -> Tensor:
        """Text t (N, text_dim) -> the contrastive space (N, P), without an image pass."""
        ...

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        """judge(features(x), t): (N, C, H, W), (N, text_dim) -> (N,)."""
        ...


def add_spectral_norm(module: nn.Module, skip: tuple[nn.Module, ...] = ()) -> None:
    """Spectrally normalise every conv and linear layer of `module` in place, except those in `skip`."""
    for name, child in list(module.named_children()):
        if any(child is s for s in skip):
            continue
        if isinstance(child, nn.Conv2d | nn.Linear):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            add_spectral_norm(child, skip)


class ProjectionDiscriminator(nn.Module):
    """Strided-conv features -> global sum pool h; D(x, t) = w.h + <P t, h>."""

    # Spectral norm on every layer but the contrastive heads (SNGAN); set by the SN subclasses.
    spectral_norm = False

    def __init__(
        self,
        *,
        text_dim: int = 128,
        image_size: int = 28,
        channels: int = 1,
        base_channels: int = 64,
        contrastive_dim: int = 0,
    ) -> None:
        super().__init__()
        self.s0, n = plan_resolution(image_size)  # s0: the side of the last feature map
        self.body, width = self.build_body(channels, base_channels, n)
        self.feature_dim = width
        self.head = nn.Linear(width, 1)
        self.project = self.build_projection(text_dim, width)
        # Heads into a shared space for the image-text contrastive loss (0: off).
        self.contrastive_dim = contrastive_dim
        if contrastive_dim > 0:
            self.image_head = nn.Linear(width, contrastive_dim)
            self.text_head = nn.Linear(text_dim, contrastive_dim)
        if self.spectral_norm:
            heads = tuple(getattr(self, k) for k in ("image_head", "text_head") if hasattr(self, k))
            add_spectral_norm(self, skip=heads)

    def build_projection(self, text_dim: int, width: int) -> nn.Module:
        """The map from text (N, text_dim) to what the features are projected on: (N, width)."""
        return nn.Linear(text_dim, width, bias=False)

    def build_body(self, channels: int, base: int, n: int) -> tuple[nn.Module, int]:
        """Layers from images (N, channels, S, S) to (N, width, s0, s0); returns (body, width)."""
        layers: list[nn.Module] = [nn.Conv2d(channels, base, 3, 1, 1), nn.LeakyReLU(0.2)]
        width = base
        for _ in range(n):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1), nn.LeakyReLU(0.2)]
            width *= 2
        layers += [nn.Conv2d(width, width, 3, 1, 1), nn.LeakyReLU(0.2)]
        return nn.Sequential(*layers), width

    def contrastive_pair(self, h: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Image features h (as `features` gives them) and text t (N, text_dim) -> both (N, P)."""
        return self.contrastive_image(h), self.contrastive_text(t)

    def contrastive_image(self, h: Tensor) -> Tensor:
        """Pooled image features h (N, F) -> the contrastive space (N, P)."""
        self._check_heads()
        return self.image_head(h)

    def contrastive_text(self, t: Tensor) -> Tensor:
        """Text t (N, text_dim) or (N, 1 + L, text_dim) -> the contrastive space (N, P)."""
        self._check_heads()
        return self.text_head(sentence(t))

    def _check_heads(self) -> None:
        if self.contrastive_dim <= 0:
            raise RuntimeError("this discriminator has no contrastive heads (contrastive_dim=0)")

    def features(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W) in [-1, 1] -> pooled image features (N, feature_dim)."""
        return self.body(x).sum(dim=(2, 3))

    def judge(self, h: Tensor, t: Tensor) -> Tensor:
        """Score precomputed features h (N, F) against text t (N, text_dim) -> logits (N,)."""
        return self.head(h).squeeze(1) + (self.project(sentence(t)) * h).sum(dim=1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """x: (N, C, H, W), t: (N, text_dim) -> logits (N,)."""
        return self.judge(self.features(x), t)


class SNProjectionDiscriminator(ProjectionDiscriminator):
    """The projection discriminator with spectral norm on every layer (SNGAN)."""

    spectral_norm = True


class GridProjectionDiscriminator(SNProjectionDiscriminator):
    """SN projection D whose text term is judged per cell of a grid x grid split of the last feature map
    (the structured-label peer's per-cell projection, with the cell vectors linear maps of the text):
    D(x, t) = w.h + sum_c <P_c t, h_c>, h = sum_c h_c. grid=1 is the projection D. With contrastive_cells
    the contrastive image head reads the cells side by side (N, F * grid * grid) instead of their sum, so the
    image-text term can tell "a 3 above a 5" from "a 5 above a 3"."""

    def __init__(self, *, grid: int = 2, contrastive_cells: bool = False, **kwargs: object) -> None:
        self.grid = grid  # a plain int, set first: the parent's __init__ builds the projection from it
        super().__init__(**kwargs)
        if not 1 <= grid <= self.s0:
            raise ValueError(f"grid={grid} must be between 1 and D's last feature map side ({self.s0})")
        self.contrastive_cells = contrastive_cells
        if contrastive_cells and self.contrastive_dim > 0:
            # Built after the parent's spectral norm pass, like the pooled head it replaces: no SN on it.
            self.image_head = nn.Linear(self.feature_dim * grid**2, self.contrastive_dim)

    def build_projection(self, text_dim: int, width: int) -> nn.Module:
        """One map of the text per cell: (N, text_dim) -> (N, width * grid * grid)."""
        return nn.Linear(text_dim, width * self.grid**2, bias=False)

    def features(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W) -> cell features (N, feature_dim, grid, grid), each the sum over its cell."""
        h = self.body(x)
        area = h.shape[2] * h.shape[3] / self.grid**2
        return F.adaptive_avg_pool2d(h, self.grid) * area

    def judge(self, h: Tensor, t: Tensor) -> Tensor:
        """Cell features h (N, F, g, g) and text t (N, d) or (N, 1 + L, d) -> logits (N,)."""
        cells = self.project(sentence(t)).view_as(h)
        return self.head(h.sum(dim=(2, 3))).squeeze(1) + (cells * h).sum(dim=(1, 2, 3))

    def contrastive_image(self, h: Tensor) -> Tensor:
        """Feature map h (N, F, g, g) -> the pooled or side-by-side cells in the contrastive space (N, P)."""
        return super().contrastive_image(h.flatten(1) if self.contrastive_cells else h.sum(dim=(2, 3)))


class ResDown(nn.Module):
    """Residual /2 block (SNGAN): [ReLU]-conv3-ReLU-conv3-avgpool, plus 1x1-conv-avgpool shortcut."""

    def __init__(self, cin: int, cout: int, preact: bool = True) -> None:
        super().__init__()
        self.preact = preact
        self.c1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, h: Tensor) -> Tensor:
        """(N, cin, S, S) -> (N, cout, S/2, S/2)."""
        a = self.c1(F.relu(h) if self.preact else h)
        a = F.avg_pool2d(self.c2(F.relu(a)), 2)
        return a + F.avg_pool2d(self.skip(h), 2)


class ResidualDiscriminator(ProjectionDiscriminator):
    """SNGAN-style residual down-blocks instead of strided convs."""

    def build_projection(self, text_dim: int, width: int) -> nn.Module:
        """The map from text (N, text_dim) to what the features are projected on: (N, width)."""
        return nn.Linear(text_dim, width, bias=False)

    def build_body(self, channels: int, base: int, n: int) -> tuple[nn.Module, int]:
        blocks: list[nn.Module] = [ResDown(channels, base * 2, preact=False)]
        blocks += [ResDown(base * 2**i, base * 2 ** (i + 1)) for i in range(1, n)]
        return nn.Sequential(*blocks, nn.ReLU()), base * 2**n


class SNResidualDiscriminator(ResidualDiscriminator):
    """Residual discriminator with spectral norm on every layer (SNGAN's D)."""

    spectral_norm = True


class WordRegionDiscriminator(SNProjectionDiscriminator):
    """SN projection D that also judges every region of its last feature map against the words it
    attends to (AttnGAN's DAMSM and GALIP's word-region matching, as a projection term):
    D(x, t) = w.h + <P s, h> + sum_r <h_r, attended words at r>, h = sum_r h_r."""

    def __init__(self, *, image_size: int = 32, heads: int = 4, **kwargs: object) -> None:
        super().__init__(image_size=image_size, **kwargs)
        text_dim = int(kwargs.get("text_dim", 128))
        self.regions = WordAttention(self.feature_dim, text_dim, self.s0, heads, zero_init=False)
        # Spectral norm on the new layers too (the parent normalised only what existed then).
        add_spectral_norm(self.regions)

    def features(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W) -> the region map (N, feature_dim, s0, s0): regions are judged one by one."""
        return self.body(x)

    def judge(self, h: Tensor, t: Tensor) -> Tensor:
        """Region map h (N, F, s0, s0) and text t (N, d) or (N, 1 + L, d) -> logits (N,)."""
        score = super().judge(h.sum(dim=(2, 3)), t)
        if t.dim() == 2:
            return score
        return score + (self.regions.out(self.regions.context(h, t)) * h).sum(dim=(1, 2, 3))

    def contrastive_image(self, h: Tensor) -> Tensor:
        """Feature map h (N, F, g, g) -> pooled, in the contrastive space (N, P)."""
        return super().contrastive_image(h.sum(dim=(2, 3)))
