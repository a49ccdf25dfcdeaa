"""Loss math: closed-form values, sign conventions, gradient penalty."""

import math

import pytest
import torch

from src.losses import adversarial as A
from src.losses.diversity import mode_seeking
from src.losses.regularizers import gradient_penalty, instance_noise_std, interpolate, r1_penalty

PAIRS = [
    (A.bce_d_loss, A.bce_g_loss),
    (A.hinge_d_loss, A.hinge_g_loss),
    (A.wgan_d_loss, A.wgan_g_loss),
    (A.lsgan_d_loss, A.lsgan_g_loss),
]


def test_closed_form_values():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 3.0])
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    assert A.bce_d_loss(real, fake).item() == pytest.approx((sp(-2) + sp(0)) / 2 + (sp(-1) + sp(3)) / 2)
    assert A.bce_g_loss(fake).item() == pytest.approx((sp(1) + sp(-3)) / 2)
    assert A.hinge_d_loss(real, fake).item() == pytest.approx((0 + 1) / 2 + (0 + 4) / 2)
    assert A.hinge_g_loss(fake).item() == pytest.approx(-1.0)
    assert A.wgan_d_loss(real, fake).item() == pytest.approx(1.0 - 1.0)
    assert A.wgan_g_loss(fake).item() == pytest.approx(-1.0)
    assert A.lsgan_d_loss(real, fake).item() == pytest.approx(0.5 * (1 + 1) / 2 + 0.5 * (1 + 9) / 2)
    assert A.lsgan_g_loss(fake).item() == pytest.approx(0.5 * (4 + 4) / 2)
    # Mao et al.'s a=-1, b=1, c=0 targets.
    assert A.lsgan_d_loss(real, fake, a=-1.0).item() == pytest.approx(0.5 * (1 + 1) / 2 + 0.5 * (0 + 16) / 2)
    assert A.lsgan_g_loss(fake, c=0.0).item() == pytest.approx(0.5 * (1 + 9) / 2)


@pytest.mark.parametrize("d_loss,g_loss", PAIRS)
def test_sign_conventions(d_loss, g_loss):
    """D's loss falls as it scores reals higher / fakes lower; G's falls as fakes score higher."""
    real = torch.full((4,), 0.5, requires_grad=True)
    fake = torch.full((4,), 0.5, requires_grad=True)
    d_loss(real, fake).backward()
    assert (real.grad < 0).all() and (fake.grad > 0).all()
    fake_g = torch.full((4,), 0.5, requires_grad=True)
    g_loss(fake_g).backward()
    assert (fake_g.grad < 0).all()


@pytest.mark.parametrize("d_loss,g_loss", PAIRS)
def test_perfect_discriminator_beats_confused_one(d_loss, g_loss):
    confident = d_loss(torch.ones(8), torch.zeros(8))  # the LSGAN targets; right side of 0 for the rest
    confused = d_loss(torch.full((8,), 0.5), torch.full((8,), 0.5))
    assert confident < confused


def test_gradient_penalty_zero_for_unit_norm_critic():
    w = torch.randn(3 * 4 * 4)
    w = w / w.norm()
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    out = x.flatten(1) @ w  # gradient wrt each sample is w: norm exactly 1
    assert gradient_penalty(x, out).item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_value_and_scale_invariance():
    x = torch.randn(4, 2, requires_grad=True)
    out = 3.0 * x.sum(1)  # grad = (3, 3): norm 3*sqrt(2)
    expected = (3 * math.sqrt(2) - 1) ** 2
    assert gradient_penalty(x, out).item() == pytest.approx(expected, rel=1e-6)
    # The AMP path: outputs scaled before autograd.grad, grads unscaled before the norm.
    assert gradient_penalty(x, out, scale=65536.0).item() == pytest.approx(expected, rel=1e-6)
    assert r1_penalty(x, out, scale=1024.0).item() == pytest.approx(18.0, rel=1e-6)


def test_gradient_penalty_is_differentiable():
    lin = torch.nn.Linear(6, 1)
    x = torch.randn(4, 6, requires_grad=True)
    gradient_penalty(x, lin(x).squeeze(1)).backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


def test_interpolate_lies_between():
    real, fake = torch.zeros(16, 1, 2, 2), torch.ones(16, 1, 2, 2)
    mix = interpolate(real, fake)
    assert ((mix >= 0) & (mix <= 1)).all()
    assert (mix == mix[:, :1, :1, :1]).all()  # one epsilon per sample


def test_instance_noise_anneals_to_zero():
    assert instance_noise_std(0, 0.1, 100) == pytest.approx(0.1)
    assert instance_noise_std(50, 0.1, 100) == pytest.approx(0.05)
    assert instance_noise_std(100, 0.1, 100) == 0.0
    assert instance_noise_std(500, 0.1, 100) == 0.0
    assert instance_noise_std(10, 0.0, 100) == 0.0


def test_all_finite():
    assert A.all_finite(torch.ones(3), torch.zeros(2))
    assert not A.all_finite(torch.ones(3), torch.tensor([float("nan")]))


@pytest.mark.parametrize("name", ["bce", "hinge", "lsgan", "wgan"])
def test_matching_aware_weight(name):
    from src.losses import adversarial
    from src.losses.objective import matching_aware_d_loss

    d_loss = getattr(adversarial, f"{name}_d_loss")
    g = torch.Generator().manual_seed(0)
    real, fake, mis = (torch.randn(8, generator=g) for _ in range(3))
    # w = 0.5 is Reed et al.'s concatenation of generated fakes and mismatched reals.
    half = matching_aware_d_loss(d_loss, real, fake, mis, 0.5)
    assert torch.allclose(half, d_loss(real, torch.cat([fake, mis])), atol=1e-6)
    assert torch.equal(matching_aware_d_loss(d_loss, real, fake, mis, 0.0), d_loss(real, fake))
    assert torch.equal(matching_aware_d_loss(d_loss, real, fake, None, 0.5), d_loss(real, fake))
    # Raising w moves weight from the generated-fake term to the mismatch term, linearly.
    a, b = (matching_aware_d_loss(d_loss, real, fake, mis, w) for w in (0.2, 0.4))
    assert torch.allclose(b - a, 0.2 * (d_loss(real, mis) - d_loss(real, fake)), atol=1e-6)


def test_mode_seeking_term():
    """1 / (mean image distance / mean noise distance); its gradient pushes the two images apart."""
    z_a, z_b = torch.zeros(4, 8), torch.ones(4, 8)  # mean |z_a - z_b| = 1
    a, b = torch.zeros(4, 1, 2, 2), torch.full((4, 1, 2, 2), 0.5)
    assert math.isclose(float(mode_seeking(a, b, z_a, z_b)), 1 / (0.5 + 1e-5), rel_tol=1e-6)
    assert math.isclose(float(mode_seeking(a, b, 2 * z_a, 2 * z_b)), 1 / (0.25 + 1e-5), rel_tol=1e-6)
    assert mode_seeking(a, a, z_a, z_b) > 1e4  # one image for every noise: the largest penalty
    assert mode_seeking(a, 2 * b, z_a, z_b) < mode_seeking(a, b, z_a, z_b)
    b = b.clone().requires_grad_(True)
    mode_seeking(a, b, z_a, z_b).backward()
    assert (b.grad < 0).all()  # descending the term moves b further from a


def test_mode_seeking_bound_stops_the_push_past_it():
    """DSGAN's bound: below it the term is MSGAN's; past it the term is 1 / bound with no gradient."""
    z_a, z_b = torch.zeros(4, 8), torch.ones(4, 8)
    a = torch.zeros(4, 1, 2, 2)
    near = torch.full((4, 1, 2, 2), 0.2, requires_grad=True)  # ratio 0.2 < bound 0.3: pushed as before
    ms = mode_seeking(a, near, z_a, z_b, bound=0.3)
    assert torch.equal(ms, mode_seeking(a, near, z_a, z_b))
    ms.backward()
    assert (near.grad < 0).all()
    far = torch.full((4, 1, 2, 2), 0.5, requires_grad=True)  # ratio 0.5 > bound: no push
    ms = mode_seeking(a, far, z_a, z_b, bound=0.3)
    assert math.isclose(ms.item(), 1 / (0.3 + 1e-5), rel_tol=1e-6)
    ms.backward()
    assert far.grad is None or torch.count_nonzero(far.grad) == 0


def test_g_phase_applies_the_configured_bound():
    from src.losses.objective import Objective, Terms
    from src.losses.phases import Fakes, Nets, g_phase

    class Flat(torch.nn.Module):  # D that sees nothing: G's loss is the mode-seeking term plus a constant
        def features(self, x):
            return x.flatten(1)[:, :1] * 0

        def judge(self, h, t):
            return h[:, 0]

    z = torch.zeros(4, 8)
    images = torch.zeros(4, 1, 2, 2)
    pair = torch.full((2, 1, 2, 2), 0.5, requires_grad=True)
    fakes = Fakes(images, z, torch.zeros(4, 3), None, pair=pair, z_pair=torch.ones(2, 8))
    for bound, expect in ((0.0, 1 / (0.5 + 1e-5)), (0.25, 1 / (0.25 + 1e-5))):
        terms = Terms(mode_seeking=1.0, mode_seeking_bound=bound)
        obj = Objective(d_loss=None, g_loss=lambda f: f.mean() * 0, terms=terms)
        _, logs = g_phase(obj, Nets(G=None, D=Flat()), fakes)
        assert math.isclose(float(logs["train/mode_seeking"]), expect, rel_tol=1e-6)


def test_drift_penalty_anchors_a_wasserstein_critic():
    from src.losses.adversarial import wgan_d_loss, wgan_g_loss
    from src.losses.objective import Objective
    from src.losses.phases import Nets, d_phase, make_fakes
    from src.models.components.discriminator import ProjectionDiscriminator
    from src.models.components.generator import DCGANGenerator

    g = DCGANGenerator(z_dim=4, text_dim=6, image_size=16, channels=1, base_channels=4)
    d = ProjectionDiscriminator(text_dim=6, image_size=16, channels=1, base_channels=4)
    x, t = torch.rand(4, 1, 16, 16) * 2 - 1, torch.randn(4, 6)
    fakes = make_fakes(g, t)
    with torch.no_grad():
        d.head.bias.fill_(100.0)  # a critic shifted by a constant: the Wasserstein loss cannot see it
    plain = Objective(d_loss=wgan_d_loss, g_loss=wgan_g_loss)
    drift = Objective(d_loss=wgan_d_loss, g_loss=wgan_g_loss, drift_weight=1e-3)
    loss0, _, (d_real, _) = d_phase(plain, Nets(g, d), x, t, None, fakes)
    loss1, logs, _ = d_phase(drift, Nets(g, d), x, t, None, fakes)
    assert (loss1 - loss0).detach().item() == pytest.approx(1e-3 * float(d_real.pow(2).mean()), rel=1e-4)
    (bias_grad,) = torch.autograd.grad(loss1, d.head.bias)
    assert bias_grad.item() > 0  # the penalty pulls the shifted critic back toward 0


def test_gradient_penalty_bounds_the_text_encoder():
    """The penalty is on the critic D(x, t) as a whole: its gradient reaches the text embedding t.

    With D(x, t) = <x, t> the input gradient is t, so the penalty is (|t| - 1)^2 with gradient
    2 (|t| - 1) t / |t| per sample (/N): a Wasserstein loss, which never saturates, could otherwise
    grow t without limit.
    """
    from src.losses.adversarial import wgan_g_loss
    from src.losses.objective import Objective
    from src.losses.phases import Fakes, Nets, d_phase

    class Dot(torch.nn.Module):
        def features(self, x):
            return x.flatten(1)

        def judge(self, h, t):
            return (h * t).sum(1)

        def forward(self, x, t):
            return self.judge(self.features(x), t)

    n, dim = 4, 6
    g = torch.Generator().manual_seed(0)
    x, fake = torch.randn(n, 1, 1, dim, generator=g), torch.randn(n, 1, 1, dim, generator=g)
    t = (3.0 * torch.randn(n, dim, generator=g)).requires_grad_(True)
    fakes = Fakes(fake, torch.zeros(n, 1), t.detach(), None)
    obj = Objective(d_loss=lambda r, f: 0.0 * (r.sum() + f.sum()), g_loss=wgan_g_loss, gp_weight=1.0)
    loss, logs, _ = d_phase(obj, Nets(None, Dot()), x, t, None, fakes)
    norm = t.detach().norm(dim=1)
    assert float(logs["train/gp"]) == pytest.approx(float((norm - 1).pow(2).mean()), rel=1e-5)
    (grad,) = torch.autograd.grad(loss, t)
    expected = 2 * (norm - 1).unsqueeze(1) * t.detach() / norm.unsqueeze(1) / n
    assert torch.allclose(grad, expected, atol=1e-6)


def test_lsgan_config_targets_are_spread_for_a_bounded_d(tmp_path):
    """`loss=lsgan` trains with targets 4 apart and G aiming between them (-2/2/0): with the 0/1/1 targets
    the spectral-norm D's text term stayed too small and G followed prompts 81% of the time on MNIST."""
    from hydra.utils import instantiate

    from tests.conftest import compose_cfg

    obj = instantiate(compose_cfg("train", ["loss=lsgan"], tmp_path).loss)
    assert obj.d_loss(torch.full((4,), 2.0), torch.full((4,), -2.0)).item() == 0.0
    assert obj.g_loss(torch.zeros(4)).item() == 0.0
    assert obj.d_loss(torch.ones(4), torch.zeros(4)).item() == pytest.approx(0.5 + 2.0)
    assert obj.terms.matching_aware == 0.5
