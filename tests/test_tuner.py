"""The in-training tuner: augmentations, ADA's controller, lr schedules; and Hydra sweeps."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from src.training import train
from src.tuner.augment import OPS, AdaController, Augment
from src.tuner.critic import AdaptiveCritic, separation
from src.tuner.schedule import LRSchedule

from conftest import ROOT, TINY


@pytest.mark.parametrize("op", sorted(OPS))
def test_augmentations_keep_shape_range_and_gradients(op):
    torch.manual_seed(0)
    x = (torch.rand(8, 3, 16, 16) * 2 - 1).requires_grad_(True)
    y = OPS[op](x, 1.0)
    assert y.shape == x.shape
    assert y.min() >= -2.5 and y.max() <= 2.5  # colour jitter may leave [-1, 1] a little, never explode
    assert not torch.equal(y, x)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert torch.equal(OPS[op](x, 0.0), x)  # p = 0: identity


def test_translation_moves_content_and_cutout_blanks_a_square():
    x = torch.full((64, 1, 16, 16), -1.0)
    x[:, :, 8, 8] = 1.0
    moved = OPS["translation"](x, 1.0)
    assert (moved.flatten(1).argmax(1) != 8 * 16 + 8).any()
    assert torch.allclose(moved.max(dim=3).values.max(dim=2).values.squeeze(), torch.ones(64))  # 1 pixel kept
    ones = torch.ones(32, 1, 16, 16)
    cut = OPS["cutout"](ones, 1.0)
    blanked = (cut == -1).flatten(1).sum(1)
    assert (blanked > 0).all() and (blanked <= 9 * 9).all()


def test_ada_p_rises_when_d_overfits_and_falls_otherwise():
    aug, ada = Augment(p=0.0), AdaController(target=0.6, interval=1, speed_kimg=1.0)
    for step in range(1, 11):  # D confident on reals: sign(D(real)) = +1 > 0.6
        ada.accumulate(torch.full((32,), 3.0))
        ada.maybe_update(aug, step, 32)
    assert aug.p.item() == pytest.approx(10 * 32 / 1000) and ada.r_t.item() == 1.0
    high = aug.p.item()
    for step in range(11, 16):  # D unsure: half its real scores negative -> r_t = 0 < 0.6
        ada.accumulate(torch.tensor([1.0, -1.0] * 16))
        ada.maybe_update(aug, step, 32)
    assert aug.p.item() == pytest.approx(high - 5 * 32 / 1000) and ada.r_t.item() == 0.0
    for step in range(16, 100):
        ada.accumulate(-torch.ones(32))
        ada.maybe_update(aug, step, 32)
    assert aug.p.item() == 0.0  # clamped


def test_ada_updates_only_every_interval():
    aug, ada = Augment(p=0.5), AdaController(interval=4)
    ada.accumulate(torch.ones(8))
    assert not ada.maybe_update(aug, 3, 8) and aug.p.item() == 0.5
    assert ada.maybe_update(aug, 4, 8) and aug.p.item() > 0.5


def test_schedules():
    warm = LRSchedule(warmup_steps=4)
    assert [warm(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    lin = LRSchedule(decay="linear", total_steps=10, final=0.1)
    assert lin(0) == pytest.approx(1.0) and lin(5) == pytest.approx(0.55) and lin(10) == pytest.approx(0.1)
    cos = LRSchedule(decay="cosine", total_steps=10, final=0.0)
    assert cos(5) == pytest.approx(0.5) and cos(10) == pytest.approx(0.0) and cos(50) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="decay"):
        LRSchedule(decay="exp")


def test_schedule_changes_the_learning_rate_in_training(tiny_cfg):
    cfg = tiny_cfg(
        "tuner=ttur_decay",
        "tuner.schedule.warmup_steps=2",
        "tuner.schedule.total_steps=4",
        "tuner.schedule.final=0.5",
        "loss.lr_g=1e-3",
        "loss.lr_d=4e-3",
        "trainer.max_steps=4",
    )
    metrics, objs = train(cfg)
    opt_g, opt_d = objs["trainer"].optimizers
    # After 4 G updates the scheduler has stepped 4 times: factor(4) = final = 0.5.
    assert opt_g.param_groups[0]["lr"] == pytest.approx(5e-4) and opt_d.param_groups[0][
        "lr"
    ] == pytest.approx(2e-3)
    assert metrics["train/lr_g"] == pytest.approx(1e-3 * LRSchedule(2, "linear", 4, 0.5)(3))


def test_ada_in_training_is_logged_and_resumed(tiny_cfg):
    common = [
        "tuner=ada",
        "tuner.ada.interval=1",
        "tuner.ada.speed_kimg=0.1",
        "callbacks.checkpoint.every_n_steps=2",
    ]
    _, full = train(tiny_cfg(*common, "trainer.max_steps=4", sub="full"))
    p_full = full["model"].augment.p.item()
    assert p_full != 0.0
    train(tiny_cfg(*common, "trainer.max_steps=2", sub="split"))
    metrics, resumed = train(tiny_cfg(*common, "trainer.max_steps=4", "ckpt_path=last", sub="split"))
    assert resumed["model"].augment.p.item() == p_full
    assert metrics["tuner/ada_p"] == pytest.approx(p_full)


def test_adaptive_critic_follows_d_accuracy():
    assert separation(torch.full((8,), 3.0), torch.full((8,), -1.0)).item() == 1.0
    assert separation(torch.zeros(8), torch.zeros(8)).item() == 0.0
    # Offset-free: a WGAN critic shifted by a constant separates exactly as well.
    r, f = torch.randn(64) + 1, torch.randn(64)
    assert torch.isclose(separation(r, f), separation(r + 100, f + 100))
    ctl = AdaptiveCritic(target=0.75, margin=0.1, interval=2)
    assert ctl.active(3) == 3  # starts with every slot
    seen = []
    for step in range(1, 9):  # D wins outright: fewer D updates, down to 1
        ctl.accumulate(torch.full((8,), 5.0), torch.full((8,), -5.0))
        ctl.maybe_update(step, 3)
        seen.append(ctl.active(3))
    assert seen == [3, 2, 2, 1, 1, 1, 1, 1]
    for step in range(9, 15):  # D cannot tell: more D updates, up to n_critic
        ctl.accumulate(torch.zeros(8), torch.zeros(8))
        ctl.maybe_update(step, 3)
    assert ctl.active(3) == 3
    with pytest.raises(ValueError, match="adaptive critic"):
        AdaptiveCritic(target=0.55, margin=0.1)


def test_adaptive_critic_in_training_is_logged_and_resumed(tiny_cfg):
    cfg = tiny_cfg(
        "tuner=[ada,adaptive_critic]", "tuner.critic.interval=1", "loss.n_critic=3", "trainer.max_steps=3"
    )
    metrics, objs = train(cfg)
    model = objs["model"]
    assert model.gan_step == 3 and model.critic is not None and model.augment is not None
    assert 1 <= metrics["tuner/n_critic"] <= 3
    model.critic.n_active.fill_(2)
    ckpt = model.state_dict()
    fresh = AdaptiveCritic()
    fresh.load_state_dict({k.split("critic.", 1)[1]: v for k, v in ckpt.items() if k.startswith("critic.")})
    assert fresh.active(3) == 2


def test_diffaugment_trains(tiny_cfg):
    _, objs = train(tiny_cfg("tuner=diffaugment", "loss=wgangp", "trainer.max_steps=2"))
    assert objs["model"].augment.p.item() == 1.0


def _cli(*args):
    tiny = [o for o in TINY if not o.startswith("~")] + ["~callbacks.evaluation"]
    return subprocess.run(
        [sys.executable, "-m", "src.train", *args, *tiny],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_grid_multirun_makes_one_folder_per_run(tmp_path):
    res = _cli(
        "-m", "loss=bce,hinge", "loss.lr_g=1e-4,2e-4", "trainer.max_steps=1", f"hydra.sweep.dir={tmp_path}"
    )
    assert res.returncode == 0, res.stderr[-3000:]
    runs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert runs == ["0", "1", "2", "3"]
    assert all((tmp_path / r / "checkpoints" / "last.ckpt").is_file() for r in runs)


def test_optuna_sweep_two_trials_through_the_entry_point(tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "hparams_search=mnist_optuna",
        "dataset=digits",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=1",
        "trainer.max_steps=2",
        f"hydra.sweep.dir={sweep}",
        "optimized_metric=train/d_loss",
        "dataset.batch_size=8",
    ]
    res = _cli(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    import yaml

    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert "best_params" in results and {"loss.lr_g", "loss.optimizer.betas"} <= set(results["best_params"])
    assert (sweep / "optuna.db").is_file()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]


@pytest.mark.parametrize("mode", ["power", "binsearch"])
def test_batch_size_finder_stops_below_out_of_memory(tiny_cfg, monkeypatch, mode):
    from src.models.gan_module import TextGAN

    real_step = TextGAN.training_step

    def step_that_runs_out_of_memory(self, batch, batch_idx):
        if batch["images"].shape[0] > 40:  # a pretend device that holds at most 40 images
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_step(self, batch, batch_idx)

    monkeypatch.setattr(TextGAN, "training_step", step_that_runs_out_of_memory)
    cfg = tiny_cfg(
        "callbacks=[default,batch_size_finder]",
        f"callbacks.batch_size_finder.mode={mode}",
        "callbacks.batch_size_finder.init_val=8",
        "trainer.max_steps=3",
        sub=mode,
    )
    _, objs = train(cfg)
    found = objs["datamodule"].batch_size
    assert found == 32 if mode == "power" else 32 <= found <= 40
    assert objs["model"].gan_step == 3  # then trained the configured steps with the found size
    assert not list(Path(objs["trainer"].default_root_dir).glob(".scale_batch_size_*"))  # temp ckpt removed
