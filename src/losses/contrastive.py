"""Image-text contrastive loss (InfoNCE, van den Oord et al. 2018): a lower bound on mutual information."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def info_nce(
    images: Tensor, texts: Tensor, temperature: float = 0.1, negatives: Tensor | None = None
) -> Tensor:
    """Symmetric InfoNCE of paired rows, cosine similarity / temperature; (N, P), (N, P) -> ().

    Equals log N when every similarity is the same (nothing shared), and falls toward 0 as each image
    becomes far more similar to its own text than to the others; log N - loss bounds I(image; text).
    `negatives` (M, P): more texts, wrong for every image, that each image must also rank below its own
    (NegCLIP's hard negatives, Yuksekgonul et al. 2023); they add columns to the image -> text term only.
    """
    a = F.normalize(images.float(), dim=1)
    b = F.normalize(texts.float(), dim=1)
    logits = a @ b.T / temperature
    target = torch.arange(len(a), device=a.device)
    to_text = logits
    if negatives is not None:
        to_text = torch.cat([logits, a @ F.normalize(negatives.float(), dim=1).T / temperature], dim=1)
    return 0.5 * (F.cross_entropy(to_text, target) + F.cross_entropy(logits.T, target))
