"""Terminal hygiene for the entry points: bad input reads as one line, known third-party noise is hidden."""

from __future__ import annotations

import difflib
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
T = TypeVar("T")


def _config_dirs(argv: list[str]) -> list[Path]:
    dirs = [CONF_DIR]
    for i, arg in enumerate(argv):
        for flag in ("--config-dir", "-cd"):
            if arg == flag and i + 1 < len(argv):
                dirs.append(Path(argv[i + 1]))
            elif arg.startswith(flag + "="):
                dirs.append(Path(arg.split("=", 1)[1]))
    return dirs


def check_yaml(argv: list[str]) -> None:
    """Parse every YAML file Hydra may load; exit with `error: malformed YAML in <file> line L: ...`."""
    for folder in _config_dirs(argv):
        for path in sorted(folder.rglob("*.yaml")) if folder.is_dir() else []:
            try:
                yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None)
                where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
                raise SystemExit(
                    f"error: malformed YAML in {path}{where}: {getattr(err, 'problem', err)}"
                ) from None


# Third-party messages that a training run cannot avoid by passing the right argument, matched narrowly
# (a message prefix, never a whole category) so anything new still shows.
_IGNORED_WARNINGS = (
    # torch 2.14 deprecated `isinstance(x, LeafSpec)`; Lightning 2.6's own `_pytree.py` still does it.
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # PixelGAN's EMA copies (src/models/components/ema.py) stay in eval mode by design: they are averaged,
    # never trained, and their BatchNorm statistics must not move with training batches.
    r"Found \d+ module\(s\) in eval mode at the start of training",
    # Our log interval counts batches across epochs (Lightning's `_batches_that_stepped`), so with epochs
    # shorter than `log_every_n_steps` (digits with n_critic=5 has 4 batches) logs still come every N steps.
    r"The number of training batches \(\d+\) is smaller than the logging interval",
)
_IGNORED_INFO = (
    # Lightning's advertisements for its cloud products (litlogger, litmodels).
    "💡 Tip:",
    # Printed because src.train passes its own compact ModelSummary callback, which is the intent.
    "Trainer already configured with model summary callbacks",
)


class _DropMessages(logging.Filter):
    """Drops log records whose message starts with one of `prefixes`."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def silence_known_noise() -> None:
    """Hide the third-party warnings and tips listed above from the terminal (idempotent)."""
    from lightning_utilities.core import rank_zero

    # sentence-transformers shows a "Batches" bar per encode() call whenever its logger is at INFO, which
    # Hydra's logging config makes it; transformers a "Loading weights" bar for the MiniLM encoder.
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    else:  # read when transformers is imported
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for pattern in _IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    # Lightning's rank-zero messages all go through this one logger (whichever Lightning package set it).
    target = rank_zero.log
    if not any(isinstance(f, _DropMessages) for f in target.filters):
        target.addFilter(_DropMessages(_IGNORED_INFO))


def _missing_option(err: Exception) -> str:
    """`dataset=imagenet is not an option; choose one of: cifar10, digits, ...` from Hydra's error."""
    group, _, name = str(getattr(err, "missing_cfg_file", "") or "").rpartition("/")
    options = list(getattr(err, "options", None) or sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")))
    return f"{group}={name} is not an option; choose one of: {', '.join(options)}"


def _unknown_key(err: Exception) -> str | None:
    """`trainer.max_step is not a setting (did you mean trainer.max_steps?)...`, or None if not that error."""
    cause = err.__cause__
    full_key, parent = getattr(cause, "full_key", None), getattr(cause, "parent_node", None)
    if not full_key or parent is None or "not in struct" not in str(cause):
        return None
    prefix = full_key.rpartition(".")[0]
    close = difflib.get_close_matches(str(cause.key), [str(k) for k in parent.keys()], n=1)
    hint = f" (did you mean {prefix + '.' if prefix else ''}{close[0]}?)" if close else ""
    return f"{full_key} is not a setting{hint}; to add a new key write +{full_key}=..."


def check_overrides(argv: list[str], config_name: str = "train") -> None:
    """Compose the config as Hydra will; exit with one `error: ...` line for a bad override."""
    if any(arg.startswith("-") for arg in argv):
        return  # flags (--multirun, --cfg, -cd) change what overrides mean: Hydra reports those itself
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            compose(config_name, overrides=argv)
    except MissingConfigException as err:
        raise SystemExit(f"error: {_missing_option(err)}") from None
    except OverrideParseException as err:
        first = str(err).splitlines()[0]
        raise SystemExit(f"error: {first}: overrides are key=value, e.g. trainer.max_steps=500") from None
    except HydraException as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        raise SystemExit(f"error: {_unknown_key(err) or '; '.join(lines)}") from None
    finally:
        GlobalHydra.instance().clear()


def check_argv(config_name: str) -> None:
    """Before Hydra runs: exit with one `error: ...` line for bad YAML files or overrides in sys.argv."""
    check_yaml(sys.argv[1:])
    check_overrides(sys.argv[1:], config_name)


def run_entry(work: Callable[[Any], T], cfg: Any, user_errors: tuple[type[Exception], ...]) -> T:
    """An entry point's work with known noise hidden; an error the user can fix ends it in one line."""
    silence_known_noise()
    try:
        return work(cfg)
    except user_errors as err:
        raise SystemExit(f"error: {err}") from None
