"""What a user sees in the terminal: a bar counting G steps, closing lines naming every output, no noise."""

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

from src.training import train

from conftest import ROOT, TINY

SHOWN = ["trainer.enable_progress_bar=true", "trainer.enable_model_summary=true"]


def test_progress_bar_counts_g_steps_to_the_budget(tiny_cfg, capsys):
    # n_critic=2: Lightning's own counter would reach 12 optimizer steps, and show epochs.
    train(tiny_cfg(*SHOWN, "loss.n_critic=2", "trainer.max_steps=4"))
    err = capsys.readouterr().err.replace("\r", "\n")
    final = [line for line in err.splitlines() if line.startswith("train: step")][-1]
    assert final.startswith("train: step 4/4 |")
    assert re.search(r"d_loss=-?\d+\.\d{3} g_loss=-?\d+\.\d{3}", final)
    assert "Epoch" not in err


def test_progress_bar_shows_on_a_terminal_that_reports_no_width(tiny_cfg, monkeypatch):
    """A fresh pseudo-terminal reports 0 columns (as `script` and some containers do): tqdm would print
    an empty bar there unless given a width."""
    import pty
    import threading

    master, replica = pty.openpty()
    tty = os.fdopen(replica, "w")
    chunks: list[bytes] = []

    def drain() -> None:  # keep the terminal's buffer from filling and blocking the writer
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    monkeypatch.setattr(sys, "stderr", tty)
    train(tiny_cfg(*SHOWN, "trainer.max_steps=2"))
    tty.close()
    reader.join(timeout=10)
    os.close(master)
    assert "train: step 2/2 |" in b"".join(chunks).decode(errors="replace")


def test_progress_bar_under_a_time_limit_shows_time_left(tiny_cfg, capsys):
    train(tiny_cfg(*SHOWN, "trainer.max_steps=-1", "trainer.max_time=00:00:00:02"))
    err = capsys.readouterr().err.replace("\r", "\n")
    lines = [line for line in err.splitlines() if line.startswith("train: step")]
    assert lines and all(re.match(r"train: step \d+ \[", line) for line in lines)  # no total to count to
    assert "time left 00:0" in lines[-1]


def _closing_lines(caplog) -> list[str]:
    done = [r.getMessage() for r in caplog.records if r.name == "src.training" and "done:" in r.getMessage()]
    assert len(done) == 1
    return [line.strip() for line in done[0].splitlines()]


def test_closing_lines_name_every_output_and_they_exist(tiny_cfg, caplog):
    cfg = tiny_cfg("logger=csv", "trainer.max_steps=3")
    with caplog.at_level(logging.INFO, logger="src.training"):
        train(cfg)
    out = Path(cfg.paths.output_dir)
    lines = _closing_lines(caplog)
    assert re.match(rf"done: 3 G steps in \d\d:\d\d; run folder {re.escape(str(out))}$", lines[0])
    by_kind = {line.split()[0]: line for line in lines[1:]}
    assert by_kind["checkpoints"] == f"checkpoints  last {out / 'checkpoints' / 'last.ckpt'}"
    assert by_kind["samples"] == f"samples      {out / 'samples'} (latest step_0000003.png)"
    assert (out / "samples" / "step_0000003.png").is_file()
    csv_file = Path(by_kind["csv"].split()[1])
    assert csv_file.is_file() and "train/d_loss" in csv_file.read_text()


def test_wandb_offline_closing_line_gives_the_sync_command(tiny_cfg, caplog, capfd, monkeypatch):
    monkeypatch.delenv("WANDB_SILENT", raising=False)  # the test suite silences W&B; this test listens
    cfg = tiny_cfg("logger=wandb", "trainer.max_steps=1")
    with caplog.at_level(logging.INFO, logger="src.training"):
        train(cfg)
    line = next(line for line in _closing_lines(caplog) if line.startswith("wandb"))
    run_dir = Path(line.split()[1])
    assert run_dir.parent == Path(cfg.paths.output_dir) / "wandb" and run_dir.name.startswith("offline-run-")
    assert run_dir.is_dir() and line.endswith(f"(upload: wandb sync {run_dir})")
    assert "anonymous" not in capfd.readouterr().err  # W&B's deprecation warning for Lightning's argument


NOISE = [
    "weights_only",  # torch/Lightning: checkpoint saved without saying what it holds
    "anonymous",  # W&B: deprecated setting Lightning always passed
    "Tip:",  # Lightning: litlogger / litmodels advertisements
    "eval mode",  # Lightning: the EMA copies are in eval mode by design
    "logging interval",  # Lightning: epochs shorter than log_every_n_steps
    "LeafSpec",  # torch deprecation inside Lightning
    "Epoch",  # Lightning's epoch-counting bar ("Epoch 45/-2")
    "not supported by the model summary",  # Lightning's size estimate under bf16-mixed
    "Modules in eval mode",  # Lightning's summary table
    "Traceback",
]


def test_cli_training_prints_no_known_noise(tmp_path):
    """A short CLI run (epochs shorter than the log interval, W&B offline): bar and closing lines only."""
    tiny = [o for o in TINY if o not in ("logger=none", "trainer.log_every_n_steps=1")]
    short_epochs = ["trainer.limit_train_batches=2", "trainer.log_every_n_steps=5"]
    overrides = tiny + SHOWN + short_epochs + ["trainer.precision=bf16-mixed", "logger=wandb"]
    res = subprocess.run(
        [sys.executable, "-m", "src.train", *overrides, f"hydra.run.dir={tmp_path}/run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "WANDB_SILENT"},
    )
    both = res.stdout + res.stderr
    assert res.returncode == 0, both[-2000:]
    assert [word for word in NOISE if word in both] == []
    assert "train: step 3/3" in res.stderr and "done: 3 G steps" in res.stdout
    assert re.search(r"model: G \(\w+\) [\d.]+ [KM]?, D \(\w+\)", res.stdout)
