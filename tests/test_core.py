"""The GAN step's correctness under mixed precision, skipped D slots, EMA statistics and the phases."""

import math

import pytest
import torch

from src.losses.adversarial import hinge_d_loss, hinge_g_loss
from src.losses.objective import Objective, Terms
from src.losses.phases import Nets, d_phase, g_phase, make_fakes
from src.losses.regularizers import gradient_penalty, interpolate, r1_penalty
from src.models.components.discriminator import ProjectionDiscriminator
from src.models.components.ema import EMA
from src.models.components.generator import DCGANGenerator, FiLMGenerator
from src.models.guard import DivergenceError, NonFiniteGuard
from src.training import fit, prepare, train


def _fit_with_cpu_grad_scaler(cfg):
    """Train with fp16 autocast and a real GradScaler on the CPU (Lightning gives CPUs no scaler), so the
    scaler paths a GPU takes run here."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    run = prepare(cfg)
    run.trainer.strategy.precision_plugin = MixedPrecision("16-mixed", "cpu", torch.amp.GradScaler("cpu"))
    fit(run)
    return run


def _nets(**terms):
    g = FiLMGenerator(z_dim=4, text_dim=6, image_size=16, channels=1, base_channels=4)
    d = ProjectionDiscriminator(text_dim=6, image_size=16, channels=1, base_channels=4)
    obj = Objective(d_loss=hinge_d_loss, g_loss=hinge_g_loss, terms=Terms(**terms))
    return g, d, obj


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed", "16-mixed+scaler"])
@pytest.mark.parametrize("fused", [True, False])
def test_grad_clipping_under_mixed_precision(tiny_cfg, precision, fused):
    # Lightning's precision plugin refuses to clip for fused optimizers, and unscaling twice under fp16
    # raises: clipping runs after Lightning's unscale (or unscales once itself for fused optimizers).
    clip = 1e-3
    cfg = tiny_cfg(
        f"trainer.precision={precision.split('+')[0]}",
        f"loss.grad_clip={clip}",
        f"+loss.optimizer.fused={fused}",
    )
    norms = []
    orig = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, **kw):
        params = list(params)
        total = orig(params, max_norm, **kw)
        norms.append(float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))))
        return total

    torch.nn.utils.clip_grad_norm_ = spy
    try:
        model = _fit_with_cpu_grad_scaler(cfg).model if "scaler" in precision else train(cfg)[1]["model"]
    finally:
        torch.nn.utils.clip_grad_norm_ = orig
    assert model.gan_step == 3 and len(norms) == 6  # one D + one G update per step
    finite = [n for n in norms if math.isfinite(n)]
    assert finite and max(finite) <= clip * 1.01  # clipped in true (unscaled) units
    # fp16's first steps overflow at the initial loss scale: the scaler skips exactly those.
    assert int(model.amp_skipped_steps) == len(norms) - len(finite)


def test_adaptive_critic_under_fp16_skips_d_slots_without_empty_optimizer_steps(tiny_cfg):
    # A skipped D slot used to call an optimizer step without gradients: under fp16 the GradScaler raises
    # "No inf checks were recorded". Skipped slots now run nothing; G steps are counted by the module.
    cfg = tiny_cfg(
        "tuner=adaptive_critic",
        "loss.n_critic=3",
        "tuner.critic.interval=1",
        "tuner.critic.target=0.55",
        "tuner.critic.margin=0.05",
        "trainer.precision=16-mixed",
        "trainer.max_steps=6",
    )
    run = _fit_with_cpu_grad_scaler(cfg)
    model, trainer = run.model, run.trainer
    assert model.gan_step == 6
    assert trainer.global_step < 6 * 4  # fewer than n_critic + 1 optimizer steps per GAN step ran


def test_ema_batchnorm_statistics_come_from_the_ema_weights():
    g = DCGANGenerator(z_dim=4, text_dim=6, image_size=16, channels=1, base_channels=4)
    ema = EMA(generator=g)
    with torch.no_grad():
        for p in g.parameters():
            p.mul_(3.0)
        g(torch.randn(64, 4), torch.randn(64, 6))  # the live G's buffers move
    ema.update(0.0, generator=g)  # decay 0: the average equals the live weights
    shadow = ema.shadow["generator"]
    assert not torch.equal(shadow.norms[0].running_mean, g.norms[0].running_mean)  # buffers not copied
    zs, ts = torch.randn(4, 32, 4), torch.randn(4, 32, 6)
    ema.standing_statistics("generator", lambda net, i: net(zs[i], ts[i]), passes=4)
    h = shadow.fc(torch.cat([zs.flatten(0, 1), ts.flatten(0, 1)], 1)).view(128, -1, shadow.s0, shadow.s0)
    assert torch.allclose(shadow.norms[0].running_mean, h.mean((0, 2, 3)), atol=1e-5)
    assert not shadow.training and shadow.norms[0].momentum == 0.1


def test_mode_seeking_pairs_come_from_one_generator_pass():
    g, d, obj = _nets(mode_seeking=1.0)
    calls = []
    g.register_forward_pre_hook(lambda m, a: calls.append(1))
    synth = g.synthesize
    g.synthesize = lambda z, c: calls.append(z.shape[0]) or synth(z, c)
    fakes = make_fakes(g, torch.randn(8, 6), pairs=4)
    assert calls == [12]  # 8 images + 4 second-noise images, one BatchNorm batch
    assert fakes.images.shape[0] == 8 and fakes.pair.shape[0] == 4
    loss, logs = g_phase(obj, Nets(g, d), fakes)
    assert "train/mode_seeking" in logs and torch.isfinite(loss)


def test_conditioning_augmentation_kl_is_returned_not_stored():
    g = DCGANGenerator(z_dim=4, text_dim=6, base_channels=4, cond_aug=True)
    code, kl = g.condition(torch.randn(3, 6))
    assert code.shape == (3, 6) and kl.item() >= 0 and not hasattr(g, "kl")
    g.eval()
    mu = g.ca(torch.ones(1, 6)).chunk(2, 1)[0]
    assert torch.equal(g.condition(torch.ones(1, 6))[0], mu)  # eval: the mean, no sampling


@pytest.mark.parametrize("penalty", ["gp", "r1"])
def test_penalties_are_taken_on_what_d_sees(penalty):
    g, d, _ = _nets()
    obj = Objective(
        d_loss=hinge_d_loss,
        g_loss=hinge_g_loss,
        gp_weight=float(penalty == "gp"),
        r1_weight=float(penalty == "r1"),
    )

    def see(x):  # a deterministic "augmentation"
        return 0.25 * x.flip(3) + 0.5

    x, t = torch.rand(6, 1, 16, 16) * 2 - 1, torch.randn(6, 6)
    fakes = make_fakes(g, t)
    torch.manual_seed(7)
    _, logs, _ = d_phase(obj, Nets(g, d, see), x, t, None, fakes)
    torch.manual_seed(7)
    if penalty == "gp":
        x_hat = interpolate(see(x), see(fakes.images.detach())).requires_grad_(True)
        want = gradient_penalty(x_hat, d(x_hat, t))
    else:
        x_seen = see(x).requires_grad_(True)
        want = r1_penalty(x_seen, d(x_seen, t))
    assert logs[f"train/{penalty}"] == pytest.approx(float(want), rel=1e-5)


def test_guard_reads_the_device_flag_every_n_steps_on_a_gpu():
    guard = NonFiniteGuard(mode="stop", check_every=4)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert not guard.per_loss(cuda) and guard.per_loss(cpu)
    assert [s for s in range(1, 13) if guard.due(s, cuda)] == [4, 8, 12]
    assert NonFiniteGuard(mode="skip").per_loss(cuda)
    with pytest.raises(ValueError):
        NonFiniteGuard(mode="ignore")


def test_stop_mode_without_per_step_reads_stops_within_check_every_steps(tiny_cfg, monkeypatch):
    # As on a GPU: no host read of each loss; a NaN is found at the next check, within check_every steps.
    monkeypatch.setattr(NonFiniteGuard, "per_loss", lambda self, device: False)
    monkeypatch.setattr(NonFiniteGuard, "due", lambda self, step, device: step % self.check_every == 0)
    calls = {"n": 0}

    def nan_after_3(real, fake):
        calls["n"] += 1
        loss = hinge_d_loss(real, fake)
        return loss * float("nan") if calls["n"] > 3 else loss

    monkeypatch.setattr("src.losses.adversarial.hinge_d_loss", nan_after_3)
    cfg = tiny_cfg("loss.terms.matching_aware=0", "model.guard.check_every=4", "trainer.max_steps=12")
    with pytest.raises(DivergenceError, match="within the 4 G steps before step 4"):
        train(cfg)
