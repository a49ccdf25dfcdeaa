"""What the demo page's buttons do, without Gradio: each action returns pictures and a status line.

Every action turns a mistake (blank prompt, bad number, unreadable upload, a model that did not load)
into `error: ...` for the page; an unexpected failure is logged with its traceback in the terminal and
the page only says that it failed.
"""

from __future__ import annotations

import hashlib
import logging
import math
import shutil
import tempfile
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.serving.sampler import Sampler
from src.serving.sampling import (
    interpolate_prompts,
    interpolation_frames,
    noise,
    upscale,
    variations,
    write_gif,
)
from src.utils.config import ConfigError
from src.utils.images import grid_image
from src.utils.inputs import check_prompts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask for, so one click cannot occupy the CPU for minutes."""

    max_images: int = 64
    max_steps: int = 16
    like_steps: int = 200
    like_sigma: float = 0.5
    # Grids are enlarged (nearest neighbour) to at least this many pixels a side for the page.
    display_side: int = 448


def _whole(value: Any, name: str, low: int, high: int) -> int:
    """A number from the page as an int in [low, high]; a ConfigError naming the field otherwise."""
    if value is None or isinstance(value, bool) or not float(value).is_integer():
        raise ConfigError(f"{name} must be a whole number (got {value!r})")
    if not low <= int(value) <= high:
        raise ConfigError(f"{name} must be between {low} and {high} (got {int(value)})")
    return int(value)


def _prompt(text: Any, name: str = "prompt") -> str:
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"the {name} is empty: type some text, e.g. 'a handwritten digit three'")
    return check_prompts([text], name)[0]


class DemoActions:
    """The page's three actions on one loaded Sampler, or the reason it could not be loaded."""

    def __init__(
        self, sampler: Sampler | None, load_error: str | None = None, limits: Limits = Limits()
    ) -> None:
        self.sampler, self.load_error, self.limits = sampler, load_error, limits
        self.tmp = Path(tempfile.mkdtemp(prefix="pixelgan-demo-"))
        # The page serves GIFs from here while it shows them; gone with the actions (at exit at the latest).
        self.cleanup = weakref.finalize(self, shutil.rmtree, self.tmp, True)

    def _run(self, fn: Callable[[Sampler], tuple], empty: tuple) -> tuple:
        """fn(sampler) -> (*outputs, status); mistakes become (*empty, 'error: ...')."""
        if self.sampler is None:
            return (*empty, f"error: the model did not load: {self.load_error}")
        try:
            return fn(self.sampler)
        except (ConfigError, ValueError, OSError) as err:
            return (*empty, f"error: {err}")
        except Exception as err:  # the page never shows a traceback; the terminal does
            log.exception("demo action failed")
            return (*empty, f"error: generation failed ({type(err).__name__}); the terminal has the details")

    def _show(self, images: torch.Tensor, nrow: int) -> np.ndarray:
        return upscale(grid_image(images, nrow=nrow), self.limits.display_side)

    def prompt_grid(self, prompt: Any, seed: Any, count: Any) -> tuple[np.ndarray | None, str]:
        """`count` images for one prompt -> (grid uint8 (H, W, 3), status), about square."""

        def act(s: Sampler) -> tuple[np.ndarray, str]:
            text = _prompt(prompt)
            n = _whole(count, "number of images", 1, self.limits.max_images)
            z = noise(n, s.z_dim, _whole(seed, "seed", 0, 2**31 - 1))
            grid = self._show(s([text] * n, z).cpu(), nrow=math.ceil(math.sqrt(n)))
            return grid, f"{n} images for “{text}”, seed {int(seed)}"

        return self._run(act, (None,))

    def interpolation(
        self, a: Any, b: Any, steps: Any, seed: Any
    ) -> tuple[np.ndarray | None, str | None, str]:
        """Walk from prompt a to b at 4 fixed noises -> (grid (H, W, 3): rows = noises, GIF path, status)."""

        def act(s: Sampler) -> tuple[np.ndarray, str, str]:
            first, second = _prompt(a, "first prompt"), _prompt(b, "second prompt")
            k = _whole(steps, "steps", 2, self.limits.max_steps)
            rows = noise(4, s.z_dim, _whole(seed, "seed", 0, 2**31 - 1))
            walk = interpolate_prompts(s, first, second, rows, k)
            # Named by everything that decides the frames: walks with other seeds never share a file, and a
            # repeated request rewrites the same one (the folder stays bounded by distinct requests).
            key = hashlib.sha256(repr((first, second, k, int(seed))).encode()).hexdigest()[:16]
            gif = write_gif(interpolation_frames(walk, 4, k), self.tmp / f"walk_{key}.gif")
            return self._show(walk, nrow=k), str(gif), f"“{first}” → “{second}” in {k} steps"

        return self._run(act, (None, None))

    def variations(
        self, image_path: Any, prompt: Any, count: Any, seed: Any
    ) -> tuple[np.ndarray | None, str]:
        """An uploaded image -> (row: input, reconstruction, `count` variations, status)."""
        from src.data.folder import load_image

        def act(s: Sampler) -> tuple[np.ndarray, str]:
            if not image_path:
                raise ConfigError("upload an image first")
            text = _prompt(prompt)
            n = _whole(count, "number of variations", 1, self.limits.max_images)
            try:
                pixels = load_image(Path(image_path), s.image_size, s.channels)
            except (OSError, ValueError) as err:
                raise ConfigError(f"the upload is not a readable image ({type(err).__name__})") from err
            image = torch.from_numpy(np.array(pixels))[None].float() / 127.5 - 1.0
            lim = self.limits
            row, mse = variations(
                s, image, text, n, lim.like_sigma, lim.like_steps, _whole(seed, "seed", 0, 2**31 - 1)
            )
            return self._show(row, nrow=len(row)), f"input, reconstruction (MSE {mse:.3f}), {n} variations"

        return self._run(act, (None,))
