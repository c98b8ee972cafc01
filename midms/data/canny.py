"""The Canny edges of CoCosNet's CelebA-HQ input, as the released models saw them.

CoCosNet (https://github.com/microsoft/CoCosNet, ``requirements.txt``) pins scikit-image 0.14.2, whose
``feature.canny`` smooths an 8-bit image with ``scipy.ndimage.gaussian_filter`` in the image's own dtype: the
smoothed image is rounded to uint8 before the gradients are taken, and the hysteresis thresholds are 10 % and
20 % of 255. Today's scikit-image smooths in floating point; on CelebA-HQ photos the two disagree on a large
share of channel 0's Canny pixels. ``official`` computes the 0.14.2 behaviour (the steps of the Canny
algorithm as that release documents them: Gaussian smoothing with the bleed-over correction of a
constant-mode border, Sobel gradients, non-maximum suppression interpolating between the two neighbours of
the gradient's 45° sector, hysteresis with 8-connected linking); ``current`` is today's ``skimage.feature.canny``.
Checked against the 0.14.2 function itself, run in a scratch folder with today's SciPy: identical edge maps.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

CANNY_MODES = ("official", "current")


def _neighbour(values: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """``values[r + dr, c + dc]`` at every pixel (zero outside the image)."""
    padded = np.pad(values, 1)
    h, w = values.shape
    return padded[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]


def canny_uint8(grey: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Canny edges (bool H×W) of an 8-bit greyscale image as scikit-image 0.14.2 computes them."""
    if grey.dtype != np.uint8 or grey.ndim != 2:
        raise ValueError(f"canny_uint8 needs a 2-D uint8 image, got {grey.dtype} with shape {grey.shape}")
    smoothed_u8 = ndi.gaussian_filter(grey, sigma, mode="constant")  # uint8 in, uint8 out: the 0.14.2 rounding
    bleed = ndi.gaussian_filter(np.ones(grey.shape), sigma, mode="constant")
    smoothed = smoothed_u8 / (bleed + np.finfo(float).eps)
    gi, gj = ndi.sobel(smoothed, axis=0), ndi.sobel(smoothed, axis=1)  # rows, columns
    ai, aj = np.abs(gi), np.abs(gj)
    magnitude = np.hypot(gi, gj)
    inner = np.zeros(grey.shape, dtype=bool)
    inner[1:-1, 1:-1] = True  # the border pixels never count
    candidates = inner & (magnitude > 0)

    same_sign = ((gi >= 0) & (gj >= 0)) | ((gi <= 0) & (gj <= 0))
    opposite_sign = ((gi <= 0) & (gj >= 0)) | ((gi >= 0) & (gj <= 0))
    steep, flat = ai >= aj, ai <= aj
    with np.errstate(divide="ignore", invalid="ignore"):
        w_steep, w_flat = aj / ai, ai / aj
    # per 45° sector: the pixels in it, the interpolation weight, and the (axis, diagonal) neighbours on each side;
    # a pixel on a sector boundary takes the last sector's verdict
    sectors = (
        (same_sign & steep, w_steep, ((1, 0), (1, 1)), ((-1, 0), (-1, -1))),
        (same_sign & flat, w_flat, ((0, 1), (1, 1)), ((0, -1), (-1, -1))),
        (opposite_sign & flat, w_flat, ((0, 1), (-1, 1)), ((0, -1), (1, -1))),
        (opposite_sign & steep, w_steep, ((-1, 0), (-1, 1)), ((1, 0), (1, -1))),
    )
    local_maxima = np.zeros(grey.shape, dtype=bool)
    for in_sector, weight, plus, minus in sectors:  # (weights outside a sector may be inf or NaN: never read)
        pts = candidates & in_sector
        keep = np.ones(grey.shape, dtype=bool)
        for (axis_dr, axis_dc), (diag_dr, diag_dc) in (plus, minus):
            with np.errstate(invalid="ignore"):
                interpolated = _neighbour(magnitude, diag_dr, diag_dc) * weight
                interpolated = interpolated + _neighbour(magnitude, axis_dr, axis_dc) * (1 - weight)
                keep &= interpolated <= magnitude
        local_maxima[pts] = keep[pts]

    high = local_maxima & (magnitude >= 0.2 * 255)
    low = local_maxima & (magnitude >= 0.1 * 255)
    labels, count = ndi.label(low, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return low
    linked = np.zeros(count + 1, dtype=bool)
    linked[np.unique(labels[high])] = True
    linked[0] = False
    return linked[labels]


def canny_edges(grey: np.ndarray, mode: str = "official") -> np.ndarray:
    """Canny edges of an 8-bit greyscale image: ``official`` (scikit-image 0.14.2) or ``current`` (today's)."""
    if mode == "official":
        return canny_uint8(grey)
    if mode == "current":
        from skimage import feature

        return feature.canny(grey)
    raise ValueError(f"canny mode must be one of {CANNY_MODES}, got {mode!r}")
