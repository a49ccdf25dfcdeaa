"""G and D variants (one class each), every supported image size, and the D interface the phases use."""

import pytest
import torch

from src.models.components.discriminator import (
    ProjectionDiscriminator,
    ResidualDiscriminator,
    SNProjectionDiscriminator,
    SNResidualDiscriminator,
    TextDiscriminator,
)
from src.models.components.generator import DCGANGenerator, FiLMGenerator, ResidualGenerator
from src.training import train
from src.utils.config import arch_differences

GENERATORS = [DCGANGenerator, FiLMGenerator, ResidualGenerator]
DISCRIMINATORS = [
    ProjectionDiscriminator,
    SNProjectionDiscriminator,
    ResidualDiscriminator,
    SNResidualDiscriminator,
]


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (16, 1)])
@pytest.mark.parametrize("G", GENERATORS)
@pytest.mark.parametrize("D", DISCRIMINATORS)
def test_generator_and_discriminator_shapes_and_gradients(size, channels, G, D):
    g = G(z_dim=8, text_dim=6, image_size=size, channels=channels, base_channels=4)
    d = D(text_dim=6, image_size=size, channels=channels, base_channels=4)
    assert isinstance(d, TextDiscriminator)
    z, t = torch.randn(5, 8), torch.randn(5, 6)
    x = g(z, t)
    assert x.shape == (5, channels, size, size) and x.abs().max() <= 1
    out = d(x, t)
    assert out.shape == (5,)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters() if p.requires_grad)
    d.eval()  # spectral norm's power iteration moves in training mode
    assert torch.allclose(d(x, t), d.judge(d.features(x), t))


def test_spectral_norm_variants_bound_every_layer_but_the_contrastive_heads():
    d = SNProjectionDiscriminator(text_dim=6, image_size=16, channels=1, base_channels=4, contrastive_dim=3)
    sn = {n.split(".parametrizations")[0] for n, _ in d.named_parameters() if "parametrizations" in n}
    assert {"head", "project", "body.0"} <= sn and not sn & {"image_head", "text_head"}
    for _ in range(20):  # power iteration converges in training mode
        d(torch.randn(2, 1, 16, 16), torch.randn(2, 6))
    w = d.project.weight
    assert float(torch.linalg.matrix_norm(w.detach(), ord=2)) == pytest.approx(1.0, abs=0.05)
    plain = ProjectionDiscriminator(text_dim=6, image_size=16, channels=1, base_channels=4)
    assert not any("parametrizations" in n for n, _ in plain.named_parameters())


def test_text_only_through_the_body_needs_a_generator_that_reads_it():
    with pytest.raises(ValueError, match="keep text_input=true"):
        DCGANGenerator(z_dim=4, text_dim=6, base_channels=4, text_input=False)
    g = FiLMGenerator(z_dim=4, text_dim=6, base_channels=4, text_input=False)
    z = torch.randn(2, 4)
    # Zero-initialised FiLM starts text-blind; a trained affine makes the text matter.
    torch.nn.init.normal_(g.norms[1].affine.weight)
    g.eval()
    assert not torch.equal(g(z, torch.randn(2, 6)), g(z, torch.randn(2, 6)))


def test_residual_variants_train_and_a_variant_change_is_an_architecture_difference(tiny_cfg):
    cfg = tiny_cfg("model/generator=residual", "model/discriminator=sn_residual", "trainer.max_steps=2")
    _, objs = train(cfg)
    assert objs["model"].gan_step == 2
    stored = {"model": {"generator": {"_target_": "a.FiLMGenerator"}}}
    now = {"model": {"generator": {"_target_": "a.ResidualGenerator"}}}
    assert arch_differences(stored, now) == [
        "model.generator._target_: checkpoint='a.FiLMGenerator', now='a.ResidualGenerator'"
    ]
