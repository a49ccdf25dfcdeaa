"""What evaluate/generate show and refuse: progress lines, `ckpt_path=latest`, one-line errors."""

import io
import os
import subprocess
import sys
import time

import pytest

import src.evaluate
import src.generate
from src.utils.config import ConfigError
from src.utils.inputs import check_prompts, latest_checkpoint
from src.utils.progress import Progress

from conftest import ROOT, compose_cfg


def test_progress_without_a_terminal_prints_plain_lines_with_eta(capsys):
    with Progress(4, "Inception features", "batch", every_s=0.0) as bar:
        for _ in range(4):
            bar.update()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("Inception features: 1/4 batch (25%), ") and "ETA" in lines[0]
    assert lines[3].startswith("Inception features: 4/4 batch (100%)")
    assert lines[4].startswith("Inception features: done, 4 batch in ")
    assert not any("\r" in line for line in lines)  # no bar redraws in a log file


def test_progress_quiet_for_short_work_without_a_terminal(capsys):
    with Progress(3, "sampling") as bar:  # default: one line every 30 s
        for _ in range(3):
            bar.update()
    assert capsys.readouterr().err == ""


def test_progress_on_a_terminal_is_a_tqdm_bar_with_eta(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    with Progress(5, "reference classifier", "step", delay_s=0.0) as bar:
        bar.update()
        time.sleep(0.2)  # tqdm redraws at most every 0.1 s
        bar.update()
    shown = term.getvalue()
    assert "reference classifier" in shown and "2/5" in shown and "<" in shown  # elapsed<remaining


def touch_ckpt(path, mtime):
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    os.utime(path, (mtime, mtime))
    return path


def test_latest_checkpoint_is_the_newest_of_runs_and_multiruns(tmp_path):
    touch_ckpt(tmp_path / "train/runs/2024-01-01_10-00-00/checkpoints/last.ckpt", 1_000)
    newest = touch_ckpt(tmp_path / "train/multiruns/2024-01-01_09-00-00/3/checkpoints/last.ckpt", 3_000)
    touch_ckpt(tmp_path / "train/runs/2024-01-02_10-00-00/checkpoints/last.ckpt", 2_000)
    touch_ckpt(tmp_path / "evaluate/runs/x/checkpoints/last.ckpt", 9_000)  # not a training run
    assert latest_checkpoint(tmp_path) == newest
    with pytest.raises(ConfigError, match="ckpt_path=latest but no training run under"):
        latest_checkpoint(tmp_path / "empty")


@pytest.mark.parametrize(
    ("prompts", "match"),
    [([], "is empty"), (["ok", " "], "position \\[1\\] are empty"), ([3], "not text"), ({"a": 1}, "a list")],
)
def test_bad_prompt_lists_are_named(prompts, match):
    with pytest.raises(ConfigError, match=match):
        check_prompts(prompts)
    assert check_prompts("a red bird") == ["a red bird"]  # one bare string is one prompt


@pytest.mark.parametrize(
    ("entry", "args", "message"),
    [
        (src.evaluate, [], "error: give a checkpoint: ckpt_path="),
        (src.evaluate, ["ckpt_path=x.ckpt", "num_samples=0"], "error: num_samples must be an integer >= 4"),
        (src.evaluate, ["ckpt_path=x.ckpt", "classifier_on_low_accuracy=maybe"], "error: classifier_on_low"),
        (src.generate, ["ckpt_path=latest", "paths.log_dir={tmp}/none"], "error: ckpt_path=latest but no"),
        (src.generate, ["ckpt_path=x.ckpt", "prompts=[]"], "error: prompts is empty"),
    ],
)
def test_entry_points_turn_user_errors_into_one_line(tmp_path, entry, args, message):
    name = entry.__name__.removeprefix("src.")
    cfg = compose_cfg(name, [a.format(tmp=tmp_path) for a in args], tmp_path)
    # main() turns exactly these into `error: <message>` (the command-line test below runs it).
    with pytest.raises(entry.USER_ERRORS) as err:
        getattr(entry, name)(cfg)
    assert f"error: {err.value}".startswith(message.format(tmp=tmp_path))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("entry", "args", "message"),
    [
        (
            "src.evaluate",
            ["ckpt_path={tmp}/gone.ckpt"],
            "error: {tmp}/gone.ckpt does not exist: give a bundle (models/mnist/bundle.pt) or a checkpoint",
        ),
        (
            "src.generate",
            ["ckpt_path={tmp}/gone.ckpt"],
            "error: {tmp}/gone.ckpt does not exist: give a bundle (models/mnist/bundle.pt) or a checkpoint",
        ),
    ],
)
def test_command_line_prints_one_error_line_without_traceback(tmp_path, entry, args, message):
    argv = [a.format(tmp=tmp_path) for a in args] + [f"hydra.run.dir={tmp_path}/out"]
    proc = subprocess.run(
        [sys.executable, "-m", entry, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == message.format(tmp=tmp_path)
