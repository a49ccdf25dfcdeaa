"""Progress of long one-off work (reference classifier, real-data features, sampling) on stderr.

On a terminal: a tqdm bar with an ETA that appears only once the work has taken a couple of seconds.
Elsewhere (log files, CI, SLURM): a plain line every `every_s` seconds, since tqdm's carriage-return
redraws turn into one unreadable line in a file.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def note(message: str) -> None:
    """One line on stderr (what was cached where); stdout stays for results such as metrics.json."""
    print(message, file=sys.stderr, flush=True)


def format_seconds(seconds: float) -> str:
    """75.2 -> '01:15', 12345 -> '3:25:45' (tqdm's format)."""
    return tqdm.format_interval(max(0.0, seconds))


class Progress:
    """Counts `total` units of work: `update(n)` as they finish, `close()` (or a `with` block) at the end."""

    def __init__(
        self, total: int, desc: str, unit: str = "it", *, every_s: float = 30.0, delay_s: float = 2.0
    ) -> None:
        self.total, self.desc, self.unit, self.every_s = total, desc, unit, every_s
        self.n = 0
        self.start = self._last_line = time.perf_counter()
        self.lines = 0
        self.bar: tqdm | None = None
        if sys.stderr.isatty():
            # `delay`: short work (a few batches) never draws a bar at all.
            self.bar = tqdm(
                total=total,
                desc=desc,
                unit=unit,
                file=sys.stderr,
                delay=delay_s,
                leave=False,
                dynamic_ncols=True,
            )

    def line(self) -> str:
        """`desc: 120/500 it (24%), 00:35 elapsed, ETA 01:51`."""
        elapsed = time.perf_counter() - self.start
        pct = 100.0 * self.n / self.total if self.total else 100.0
        eta = elapsed / self.n * (self.total - self.n) if self.n else float("nan")
        eta_s = format_seconds(eta) if eta == eta else "?"
        return (
            f"{self.desc}: {self.n}/{self.total} {self.unit} ({pct:.0f}%), "
            f"{format_seconds(elapsed)} elapsed, ETA {eta_s}"
        )

    def update(self, n: int = 1) -> None:
        """Mark `n` more units done."""
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if now - self._last_line >= self.every_s:
            self._last_line = now
            self.lines += 1
            note(self.line())

    def close(self) -> None:
        """Remove the bar; in a log, close the periodic lines with the total time."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.lines:
            took = format_seconds(time.perf_counter() - self.start)
            note(f"{self.desc}: done, {self.n} {self.unit} in {took}")
            self.lines = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(items: Iterable[T], total: int, desc: str, unit: str = "batch") -> Iterator[T]:
    """Yield `items`, counting each one on a Progress (bar or periodic line)."""
    with Progress(total, desc, unit) as bar:
        for item in items:
            yield item
            bar.update()
