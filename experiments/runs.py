"""Command lines shared by the experiment scripts: one training run of a recipe through `src.train`."""

from __future__ import annotations

import sys
from pathlib import Path


def train_cmd(recipe: str, data: str, cache: str, out: Path | str, *overrides: str) -> list[str]:
    """`python -m src.train experiment=<recipe> ...` writing CSV logs into `out`, overrides last."""
    return [
        sys.executable,
        "-m",
        "src.train",
        f"experiment={recipe}",
        f"paths.data_dir={data}",
        f"paths.cache_dir={cache}",
        f"hydra.run.dir={out}",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        *overrides,
    ]
