"""Fixed 8-bit greyscale images for the Canny tests, made by numpy alone (the same on every machine)."""

from __future__ import annotations

import numpy as np


def fixed_images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 256, (48, 48), dtype=np.uint8)
    yy, xx = np.mgrid[0:64, 0:64]
    shapes = np.full((64, 64), 60.0)
    shapes[(yy - 30) ** 2 + (xx - 26) ** 2 < 15**2] = 170.0  # a disc
    shapes[40:58, 36:60] = 120.0  # a bar
    shapes += 8 * np.sin(xx / 3.0) + rng.normal(0, 6, (64, 64))  # stripes and noise: smoothing matters
    ramp = (np.clip(xx * 4 + yy, 0, 255)).astype(np.uint8)  # a gentle gradient with one step
    ramp[:, 32:] = np.clip(ramp[:, 32:].astype(int) + 40, 0, 255).astype(np.uint8)
    return {"noise": noise, "shapes": np.clip(shapes, 0, 255).astype(np.uint8), "ramp": ramp}
