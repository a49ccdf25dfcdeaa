"""G and D architectures: plain and residual stages, FiLM, spectral norm, every supported image size."""

import pytest
import torch

from src.models.components.discriminator import Discriminator
from src.models.components.generator import Generator
from src.train import train
from src.utils.config import arch_differences


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (16, 1)])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("film", [False, True])
def test_generator_and_discriminator_shapes_and_gradients(size, channels, residual, film):
    g = Generator(
        z_dim=8, text_dim=6, image_size=size, channels=channels, base_channels=4, film=film, residual=residual
    )
    d = Discriminator(
        text_dim=6, image_size=size, channels=channels, base_channels=4, spectral_norm=True, residual=residual
    )
    z, t = torch.randn(5, 8), torch.randn(5, 6)
    x = g(z, t)
    assert x.shape == (5, channels, size, size) and x.abs().max() <= 1
    out = d(x, t)
    assert out.shape == (5,)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters() if p.requires_grad)


def test_residual_recipe_trains_and_old_checkpoints_still_match(tiny_cfg):
    cfg = tiny_cfg(
        "model.generator.residual=true", "model.discriminator.residual=true", "trainer.max_steps=2"
    )
    _, objs = train(cfg)
    assert objs["model"].gan_step == 2
    # A checkpoint written before the switch existed lacks the key; absent means off, not a mismatch.
    stored = {"model": {"generator": {"film": False}}}
    now = {"model": {"generator": {"film": False, "residual": False}}}
    assert arch_differences(stored, now) == []
    now["model"]["generator"]["residual"] = True
    assert arch_differences(stored, now) == ["model.generator.residual: checkpoint=None, now=True"]
    now["model"]["generator"].update(residual=False, text_input=True)  # absent text_input meant true
    assert arch_differences(stored, now) == []
