"""Reliability: SIGKILL/SIGTERM, divergence handling, malformed input, fuzzed prompts and overrides."""

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from src.models.guard import DivergenceError
from src.training import USER_ERRORS, train

from conftest import ROOT, TINY

# --- divergence -------------------------------------------------------------------------------------
_CALLS = {"n": 0, "bad_at": -1}


def nan_d_loss(real, fake):
    """Hinge D loss that turns NaN on its `bad_at`-th call (an injected divergence)."""
    _CALLS["n"] += 1
    loss = torch.relu(1 - real).mean() + torch.relu(1 + fake).mean()
    return loss * float("nan") if _CALLS["n"] == _CALLS["bad_at"] else loss


@pytest.fixture
def nan_at():
    def arm(d_step: int) -> str:
        # With the default matching-aware term each D step calls d_loss twice (fakes, then mismatches):
        # the first call of the `d_step`-th D step turns NaN.
        _CALLS.update(n=0, bad_at=2 * d_step - 1)
        return "loss.d_loss._target_=test_reliability.nan_d_loss"

    yield arm
    _CALLS.update(n=0, bad_at=-1)


def test_nan_stops_with_step_and_keeps_last_good_checkpoint(tiny_cfg, nan_at):
    cfg = tiny_cfg(nan_at(5), "trainer.max_steps=10")
    with pytest.raises(DivergenceError, match=r"non-finite D loss \(nan\) at step 4"):
        train(cfg)
    ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["pixelgan_gan_step"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_nan_rolls_back_and_finishes(tiny_cfg, nan_at):
    cfg = tiny_cfg(nan_at(4), "trainer.max_steps=6", "model.guard.mode=rollback")
    _, objs = train(cfg)
    model = objs["model"]
    assert model.rollbacks == 1 and model.gan_step == 6
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nan_skip_counts(tiny_cfg, nan_at):
    cfg = tiny_cfg(nan_at(2), "trainer.max_steps=3", "model.guard.mode=skip")
    metrics, objs = train(cfg)
    assert int(objs["model"].nonfinite_skips) == 1 and metrics["train/nonfinite_skips"] == 1.0


# --- processes killed ---------------------------------------------------------------------------------
def cli(out: Path, *args: str) -> list[str]:
    tiny = [o for o in TINY if not o.startswith("~")] + ["~callbacks.evaluation"]
    return [sys.executable, "-m", "src.train", *tiny, f"hydra.run.dir={out}", *args]


def wait_for(path_glob: Path, timeout: float = 120.0) -> None:
    t0 = time.time()
    while not list(path_glob.parent.glob(path_glob.name)):
        if time.time() - t0 > timeout:
            raise TimeoutError(path_glob)
        time.sleep(0.05)


def all_checkpoints_load(ckpt_dir: Path) -> list[int]:
    steps = []
    for p in sorted(ckpt_dir.glob("*.ckpt")):
        steps.append(torch.load(p, weights_only=True)["pixelgan_gan_step"])  # raises if truncated
    return steps


def ckpt_step(path: Path) -> int:
    return torch.load(path, weights_only=True)["pixelgan_gan_step"]


def resume_and_finish(out: Path, steps: int, *extra: str) -> None:
    """Resume the run in `out` with ckpt_path=last; it must finish with last.ckpt at exactly `steps`."""
    args = cli(out, f"trainer.max_steps={steps}", "ckpt_path=last", *extra)
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert ckpt_step(out / "checkpoints" / "last.ckpt") == steps


def test_sigkill_at_random_moments_loses_at_most_one_interval(tmp_path):
    out = tmp_path / "run"
    rng = random.Random(0)
    args = [
        "trainer.max_steps=100000",
        "callbacks.checkpoint.every_n_steps=1",
        "callbacks.samples.every_n_steps=0",
    ]
    for attempt in range(3):
        resume = ["ckpt_path=last"] if attempt else []
        proc = subprocess.Popen(
            cli(out, *args, *resume), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        before = all_checkpoints_load(out / "checkpoints") if attempt else []
        wait_for(out / "checkpoints" / f"step_{(max(before) if before else 0) + 2:07d}.ckpt")
        time.sleep(rng.uniform(0.0, 0.5))  # lands anywhere, including inside a checkpoint write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        steps = all_checkpoints_load(out / "checkpoints")
        last = ckpt_step(out / "checkpoints" / "last.ckpt")
        assert last >= max(steps) - 1  # one interval (1 step) at most behind the newest step file
    resume_and_finish(out, last + 2)
    assert not list((out / "checkpoints").glob(".*.tmp"))  # stale temp files are cleaned on start


def test_sigterm_writes_a_checkpoint_then_resumes(tmp_path):
    out = tmp_path / "run"
    args = [
        "trainer.max_steps=100000",
        "callbacks.checkpoint.every_n_steps=100000",
        "callbacks.samples.every_n_steps=3",
    ]
    proc = subprocess.Popen(
        cli(out, *args), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    wait_for(out / "samples" / "step_0000003.png")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 or "SIGTERM" in err
    step = ckpt_step(out / "checkpoints" / "last.ckpt")
    assert step >= 3
    resume_and_finish(out, step + 2, "callbacks.samples.every_n_steps=0")


# --- malformed input ------------------------------------------------------------------------------------
def run(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "src.train", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


def test_malformed_override_is_a_clear_error(tmp_path):
    res = run("loss.lr_g=[1,", f"hydra.run.dir={tmp_path}")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "[1," in res.stderr


def test_malformed_yaml_is_a_clear_error(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "broken.yaml").write_text("# @package _global_\nmodel: {lr_g: [1, 2\n")
    res = run("--config-dir", str(tmp_path), "+experiment=broken", f"hydra.run.dir={tmp_path}/run")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "broken" in res.stderr


# --- fuzzing ----------------------------------------------------------------------------------------
FUZZ_KEYS = [
    "loss.lr_g",
    "loss.lr_d",
    "model.ema_decay",
    "model.generator.z_dim",
    "model.generator.base_channels",
    "model.discriminator.base_channels",
    "text_encoder.embed_dim",
    "text_encoder.kernel_size",
    "text_encoder.max_len",
    "loss.n_critic",
    "loss.gp_weight",
    "dataset.batch_size",
    "dataset.image_size",
    "loss.optimizer.betas",
    "loss.terms.instance_noise",
    "loss.grad_clip",
    "seed",
    "model.guard.mode",
]
FUZZ_VALUES = ["-1", "0", "0.5", "3", "1e9", "abc", "null", "true", "[1,2]", "[0.5,0.9]", "nan", "''"]


def test_fuzzed_overrides_give_a_result_or_a_clear_error(tiny_cfg):
    rng = random.Random(1234)
    outcomes = {"ok": 0, "error": 0}
    for i in range(24):
        overrides = [f"{rng.choice(FUZZ_KEYS)}={rng.choice(FUZZ_VALUES)}" for _ in range(rng.randint(1, 2))]
        try:
            cfg = tiny_cfg(*overrides, "trainer.max_steps=1", sub=f"fuzz{i}")
        except (HydraException, OmegaConfBaseException):
            outcomes["error"] += 1  # Hydra rejected the override itself, with its own message
            continue
        try:
            train(cfg)
            outcomes["ok"] += 1
        except USER_ERRORS as err:
            assert "\n" not in str(err), overrides
            outcomes["error"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 0


@pytest.mark.parametrize("seed", range(3))
def test_fuzzed_prompts(seed):
    from src.models.components.text_encoder import CharCNNEncoder

    rng = random.Random(seed)
    enc = CharCNNEncoder(embed_dim=8, channels=8, char_dim=4).eval()
    alphabet = [
        chr(c) for c in (*range(0, 40), *range(0x300, 0x320), 0x1F600, 0x1F389, 0xFEFF, 0x202E)
    ] + list("ab ")
    prompts = [
        "".join(rng.choice(alphabet) for _ in range(rng.choice([1, 5, 300, 10_000]))) for _ in range(16)
    ]
    with torch.no_grad():
        out = enc(enc.prepare(prompts))
    assert out.shape == (16, 8) and torch.isfinite(out).all()
    # Eval mode is deterministic, and trailing padding does not change a caption's vector.
    with torch.no_grad():
        assert torch.equal(enc(enc.prepare(prompts)), out)
        long_enc = CharCNNEncoder(embed_dim=8, channels=8, char_dim=4, max_len=128).eval()
        long_enc.load_state_dict(enc.state_dict())
        short = ["a seven", "digit 3"]
        assert torch.allclose(long_enc(long_enc.prepare(short)), enc(enc.prepare(short)), atol=1e-6)
