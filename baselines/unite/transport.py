"""UNITE's feature transport: Sinkhorn potentials and the transport plan, as the released code computes them.

Zhan et al., "Unbalanced Feature Transport for Exemplar-based Image Translation", CVPR 2021;
https://github.com/fnzhan/UNITE. The correspondence (``models/networks/correspondence.py``, ``NoVGGCorrespondence``)
calls a modified copy of geomloss 0.2.3 (J. Feydy, ``models/networks/geomloss/``) as
``SamplesLoss("sinkhorn", p=1, blur=0.025, debias=False, potentials=True)(a, x, b, y)`` and turns the dual potentials
into a row-normalised plan. What the copy computes, which the pip package does not:

- the tensorized backend always (``samples_loss.py``: the chosen backend is overwritten);
- the cost ``sqrt0(1 - x·yᵀ)`` (``utils.py``: ``squared_distances`` is one minus the dot product, as the features are
  unit vectors; ``sqrt0`` is 0 for negative arguments, with a zero gradient there);
- the ε-schedule ``[diameter, blur, diameter, diameter·scaling, ...]`` down to above ``blur``
  (``sinkhorn_divergence.py``: ``blur^p`` is placed second, not last), the diameter being the bounding-box
  diagonal of all points of the batch;
- symmetric Sinkhorn updates (averaged with the previous potentials) without gradient, then one extrapolation step at
  the last ε with the cost's gradient (``sinkhorn_loop``; the log-weights are detached there).

The plan (``correspondence.py``) is ``exp((F_i + G_j - C_ij) / ε) · (a_i · b_i)`` with ``C = 1 - x·yᵀ`` (no square
root), divided by its row sums. As released, ``b`` enters with the input's index (both weights are viewed as
B×N×1), so the weights scale whole rows and cancel in the row-normalised plan; they matter only where the plan is
normalised over the other index (the cycle warp).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

BLUR = 0.025  # ``self.blur`` of NoVGGCorrespondence (the ``--blur`` option is not read)
SCALING = 0.5  # geomloss' default ε-scaling factor


class _Sqrt0(torch.autograd.Function):
    """``sqrt`` with 0 for negative inputs and a zero gradient where the result is 0 (geomloss' ``sqrt_0``)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        result = x.sqrt()
        result[x < 0] = 0
        ctx.save_for_backward(result)
        return result

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (result,) = ctx.saved_tensors
        grad_input = grad / (2 * result)
        grad_input[result == 0] = 0
        return grad_input


def transport_cost(x: Tensor, y: Tensor) -> Tensor:
    """B×N×M: ``sqrt0(1 - x·yᵀ)`` for unit feature vectors x (B×N×D) and y (B×M×D)."""
    return _Sqrt0.apply(1 - torch.matmul(x, y.permute(0, 2, 1)))


def _softmin(eps: float, cost: Tensor, f: Tensor) -> Tensor:
    b = cost.shape[0]
    return -eps * (f.view(b, 1, -1) - cost / eps).logsumexp(2).view(b, -1)


def _log_weights(a: Tensor) -> Tensor:
    log = a.log()
    log[a <= 0] = -100000
    return log


def epsilon_schedule(x: Tensor, y: Tensor, blur: float = BLUR, scaling: float = SCALING) -> list[float]:
    """The ε values of the Sinkhorn loop for p = 1: the diameter, ``blur``, then the diameter scaled down by
    ``scaling`` while above ``blur`` (numpy's ``arange`` in log space, as geomloss)."""
    d = x.shape[-1]
    points = (x.reshape(-1, d), y.reshape(-1, d))
    lows = torch.stack([p.min(dim=0)[0] for p in points]).min(dim=0)[0]
    highs = torch.stack([p.max(dim=0)[0] for p in points]).max(dim=0)[0]
    diameter = (highs - lows).norm().item()
    steps = np.arange(np.log(diameter), np.log(blur), np.log(scaling))
    return [diameter, blur] + [float(np.exp(e)) for e in steps]


def sinkhorn_potentials(
    a: Tensor, x: Tensor, b: Tensor, y: Tensor, blur: float = BLUR, scaling: float = SCALING
) -> tuple[Tensor, Tensor]:
    """The dual potentials (F on x: B×N, G on y: B×M) of entropic OT between the weighted point clouds
    (a: B×N, x: B×N×D) and (b: B×M, y: B×M×D), balanced, not debiased."""
    cost_xy, cost_yx = transport_cost(x, y.detach()), transport_cost(y, x.detach())
    eps_s = epsilon_schedule(x, y, blur, scaling)
    a_log, b_log = _log_weights(a), _log_weights(b)
    with torch.no_grad():
        eps = eps_s[0]
        g_y = _softmin(eps, cost_yx, a_log)
        f_x = _softmin(eps, cost_xy, b_log)
        for eps in eps_s:
            g_new = _softmin(eps, cost_yx, a_log + f_x / eps)
            f_new = _softmin(eps, cost_xy, b_log + g_y / eps)
            g_y, f_x = 0.5 * (g_y + g_new), 0.5 * (f_x + f_new)
    # the last extrapolation, with the gradient of the cost (the potentials it starts from are constants)
    g_y, f_x = (
        _softmin(eps, cost_yx, (a_log + f_x / eps).detach()),
        _softmin(eps, cost_xy, (b_log + g_y / eps).detach()),
    )
    return f_x, g_y


def transport_plan(
    potential_x: Tensor, potential_y: Tensor, a: Tensor, b: Tensor, x: Tensor, y_t: Tensor, blur: float = BLUR
) -> tuple[Tensor, Tensor]:
    """The unnormalised plan ``f`` (B×N×N) and its row-normalised form (the warp's weights).

    ``x`` is B×N×D (input side) and ``y_t`` the exemplar side as D×N per sample (B×D×N), the layouts the released
    code multiplies."""
    n = x.shape[1]
    f_i, g_j = potential_x.view(-1, n, 1), potential_y.view(-1, 1, n)
    a_i, b_i = a.view(-1, n, 1), b.view(-1, n, 1)  # both along the input index, as released (module docstring)
    cost = 1 - torch.matmul(x, y_t)
    f = ((f_i + g_j - cost) / blur).exp() * (a_i * b_i)
    return f, f / f.sum(-1).view(-1, n, 1)
