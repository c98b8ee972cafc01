"""Uncertainty of the distribution metrics: bootstrap intervals over images, and their reporting convention.

A distribution metric (FID, SWD) is one number from a finite set of outputs: another set of test images
gives another number, and at the test-set sizes of exemplar-based translation (LSUN-Churches: 300 pairs) FID
is biased and noisy (Chong and Forsyth, "Effectively Unbiased FID and Inception Score and where to find them",
CVPR 2020). Each such metric therefore also reports ``<name>_ci95``: the half-width of a 95 % normal interval
from the bootstrap standard error, 1.96 × the standard deviation of the metric over resamples of the
*generated* images, drawn with replacement from a seeded generator (Efron and Tibshirani, "An Introduction to
the Bootstrap", 1993: 25 to 200 resamples estimate a standard error well, ch. 6.4; a percentile interval needs
about 1000, ch. 19). The reference side stays fixed: every method is compared with the same real images, so
their sampling is not what separates methods. KID reports the standard deviation over its subsets instead, as
published (Bińkowski et al., "Demystifying MMD GANs", ICLR 2018): ``<name>_subset_std``.

Resampling with replacement repeats images, which biases FID upwards; the half-width measures the spread,
and the reported value stays the metric on the full set.
"""

from __future__ import annotations

import numpy as np

#: the suffixes of a value's uncertainty: ± this in tables (the bootstrap half-width; KID's subset std)
UNCERTAINTY_SUFFIXES = ("_ci95", "_subset_std")
Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """``resamples`` × ``n`` indices drawn with replacement from ``range(n)`` (NumPy's PCG64, seeded)."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def half_width(values: np.ndarray) -> float:
    """1.96 × the standard deviation (ddof 1) of bootstrap ``values``: the half-width of the 95 % normal interval."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 resamples, got {values.size}")
    return float(Z95 * values.std(ddof=1))


def protocol(resamples: int, seed: int) -> dict:
    """What produced a ``_ci95`` value, for ``results.json``."""
    return {
        "resamples": resamples,
        "seed": seed,
        "interval": "95 % normal interval half-width: 1.96 × the bootstrap standard error",
        "over": "generated images (with replacement); reference side fixed",
    }
