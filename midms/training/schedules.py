"""Learning-rate schedules of the released GAN codes."""

from __future__ import annotations

from collections.abc import Callable


def linear_decay(niter: int, niter_decay: int) -> Callable[[int], float]:
    """The ``--niter`` / ``--niter_decay`` schedule of pix2pixHD, SPADE and CoCosNet as a ``LambdaLR`` factor.

    The rate is constant for ``niter`` epochs, then falls by ``1 / niter_decay`` of the base rate after each further
    epoch (``update_learning_rate`` at each epoch's end in the released trainers), reaching zero after
    ``niter + niter_decay`` epochs. The factor's argument is the number of finished epochs.
    """

    def factor(epoch: int) -> float:
        return max(0.0, 1.0 - max(0, epoch - niter) / max(niter_decay, 1))

    return factor
