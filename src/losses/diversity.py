"""Diversity terms for G: pure functions returning a scalar tensor to add to G's loss."""

from __future__ import annotations

from torch import Tensor


def mode_seeking(
    fake_a: Tensor, fake_b: Tensor, z_a: Tensor, z_b: Tensor, eps: float = 1e-5, bound: float = 0.0
) -> Tensor:
    """MSGAN's mode-seeking term (Mao et al. 2019): 1 / (mean|fake_a - fake_b| / mean|z_a - z_b|) -> ().

    fake_a, fake_b (N, C, H, W) are G's images for the same captions from noises z_a, z_b (N, Z). Small
    when different noises give different images, so G is pushed away from one image per caption.
    `bound` > 0 caps the ratio there (DSGAN's tau, Yang et al. 2019): past it the term is constant and
    pushes no more, so G is not paid for differences beyond the data's own (on a black canvas the
    cheapest extra difference is a bright blob).
    """
    ratio = (fake_a - fake_b).abs().mean() / (z_a - z_b).abs().mean()
    if bound > 0:
        ratio = ratio.clamp(max=bound)
    return 1.0 / (ratio + eps)
