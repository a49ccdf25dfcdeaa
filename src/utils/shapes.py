"""Image-shape arithmetic shared by the networks and the config checks (no torch modules here)."""

from __future__ import annotations


def plan_resolution(image_size: int) -> tuple[int, int]:
    """Start size s0 in [4, 7] and number of x2 stages n with s0 * 2**n == image_size."""
    for n in range(1, 9):
        s0, rem = divmod(image_size, 2**n)
        if rem == 0 and 4 <= s0 <= 7:
            return s0, n
    raise ValueError(
        f"image_size={image_size} cannot be built: it must be s0 * 2**n with 4 <= s0 <= 7 and n >= 1 "
        "(e.g. 16, 20, 24, 28, 32, 48, 56, 64)"
    )
