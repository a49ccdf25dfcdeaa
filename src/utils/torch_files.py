"""Crash-safe torch files: a write leaves the old complete file or the new complete one; a read of a
missing or foreign file is one error line. No Lightning here: serving reads bundles without it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, concurrent builders each train (the old behaviour)
    fcntl = None  # type: ignore[assignment]


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temp file in the same folder, fsync, then os.replace over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); the saved file gets the mode a plain open() would give.
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def build_lock(path: str | os.PathLike, wait_note: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an inter-process lock on `.<name>.lock` beside the cache file `path` while one process builds
    it: the others (Ray trials, DDP ranks, multirun jobs starting together) wait, then find the file and
    load it. Callers check `path` again inside. `wait_note(message)` is called once when another process
    holds the lock; a folder that cannot hold a lock file (read-only), or Windows (no fcntl), means none."""
    path = Path(path)
    handle = None
    if fcntl is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path.with_name(f".{path.name}.lock"), "a")  # noqa: SIM115 (closed below)
        except OSError:
            handle = None
    if handle is None:
        yield
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if wait_note is not None:
                wait_note(f"waiting for another process to build {path}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()  # closing the descriptor releases the lock


def read_torch_file(path: Path, error: type[Exception], missing: str, unreadable: str) -> Any:
    """torch.load (weights_only, on CPU); `error(missing)` for no file, `error(unreadable (Type))` for a
    file torch cannot read."""
    if not path.is_file():
        raise error(missing)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zips, foreign pickles and text files raise different types
        raise error(f"{unreadable} ({type(err).__name__})") from err
