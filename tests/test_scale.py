"""Mixed precision, DDP on CPU (gloo), speed switches and the AMP gradient-penalty path."""

import json
import subprocess
import sys

import pytest
import torch

from src.losses.regularizers import gradient_penalty, r1_penalty
from src.training import train

from conftest import ROOT, TINY

LOSSES = ["bce", "wgangp", "hinge", "lsgan"]
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("loss", LOSSES)
def test_bf16_mixed_trains_every_loss_on_cpu(tiny_cfg, loss):
    metrics, objs = train(tiny_cfg(f"loss={loss}", "trainer.precision=bf16-mixed", "trainer.max_steps=2"))
    assert objs["model"].gan_step == 2
    assert all(torch.isfinite(torch.tensor(metrics[k])) for k in ("train/d_loss", "train/g_loss"))
    assert all(p.dtype == torch.float32 for p in objs["model"].parameters())  # master weights stay fp32


def test_channels_last_and_compile_switches_keep_checkpoints_compatible(tiny_cfg):
    cfg = tiny_cfg("model.channels_last=true", "trainer.max_steps=2", sub="cl")
    _, objs = train(cfg)
    ckpt = f"{cfg.paths.output_dir}/checkpoints/last.ckpt"
    keys = set(torch.load(ckpt, weights_only=True)["state_dict"])
    assert not any("_orig_mod" in k for k in keys)
    # A plain run can resume the channels_last run's checkpoint: same parameter names and shapes.
    _, resumed = train(tiny_cfg(f"ckpt_path={ckpt}", "trainer.max_steps=3", sub="plain"))
    assert resumed["model"].gan_step == 3


@pytest.mark.slow
def test_compile_trains(tiny_cfg):
    _, objs = train(tiny_cfg("model.compile=true", "trainer.max_steps=2"))
    assert objs["model"].gan_step == 2


def test_gradient_penalty_under_a_fake_scale_matches_unscaled():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
    )
    x = torch.randn(5, 3, 2, 2, requires_grad=True)
    plain = gradient_penalty(x, net(x).squeeze(1))
    for scale in (2.0**8, 2.0**16, torch.tensor(65536.0)):
        assert torch.allclose(gradient_penalty(x, net(x).squeeze(1), scale=scale), plain, rtol=1e-5)


def test_gradient_penalty_of_fp16_outputs_does_not_overflow_at_the_default_scale():
    # A GradScaler starts at 2**16, above fp16's largest value (65504): scaling fp16 outputs in fp16 gave
    # inf/NaN (seen on an H100). fp16 layers on the CPU reproduce it without a GPU.
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
    )
    x = torch.randn(4, 3, 2, 2)
    x32 = x.clone().requires_grad_(True)
    ref = gradient_penalty(x32, net(x32).squeeze(1))
    x16 = x.half().requires_grad_(True)
    out16 = net.half()(x16).squeeze(1)
    amp = gradient_penalty(x16, out16, scale=2.0**16)
    assert torch.isfinite(amp) and torch.allclose(amp, ref.detach(), rtol=2e-2)
    r1 = r1_penalty(x16, net(x16).squeeze(1), scale=torch.tensor(65536.0))
    assert torch.isfinite(r1)


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("loss", LOSSES)
def test_fp16_mixed_trains_every_loss_on_gpu(tiny_cfg, loss):
    metrics, objs = train(
        tiny_cfg(
            f"loss={loss}", "trainer.precision=16-mixed", "trainer.accelerator=gpu", "trainer.max_steps=3"
        )
    )
    assert objs["model"].gan_step == 3 and torch.isfinite(torch.tensor(metrics["train/d_loss"]))


@gpu
@pytest.mark.gpu
def test_gradient_penalty_under_real_scaler_equals_unscaled():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(), torch.nn.LazyLinear(1)).cuda()
    x = torch.randn(4, 3, 8, 8, device="cuda", requires_grad=True)
    net(x)
    ref = gradient_penalty(x, net(x).squeeze(1))
    scaler = torch.amp.GradScaler("cuda", init_scale=2.0**16)
    with torch.autocast("cuda", dtype=torch.float16):
        out = net(x).squeeze(1)
    amp = gradient_penalty(x, out, scale=scaler.get_scale())
    assert torch.allclose(amp.float(), ref.float(), rtol=1e-2)


def test_ddp_two_cpu_processes_through_the_real_entry_point(tmp_path):
    out = tmp_path / "ddp_run"
    tiny = [o for o in TINY if o not in ("trainer.accelerator=cpu",)]
    cmd = [
        sys.executable,
        "-m",
        "src.train",
        *tiny,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_steps=3",
        "callbacks.checkpoint.every_n_steps=100",
        # The tuners sum their statistics over ranks at every D update: a mismatched collective would hang.
        "tuner=[ada,adaptive_critic]",
        "tuner.critic.interval=2",
        f"hydra.run.dir={out}",
    ]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    check = json.loads((out / "ddp_check.json").read_text())
    assert check["world_size"] == 2 and check["in_sync"] and len(check["checksums"]) == 2
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["last.ckpt", "step_0000003.ckpt"]
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["pixelgan_gan_step"] == 3
    # One run folder: the second rank wrote into the first one's, not a folder of its own.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp_run"]
    assert len(list((out / "samples").glob("*.png"))) == 2  # steps 2 and 3, written by rank 0 only
