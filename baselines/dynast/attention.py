"""DynaST's dynamic attention: dense at the coarsest level, sparse (top-k candidates) at the finer ones.

Liu, Zheng, Xu, Wang, Zhang and Shen, "DynaST: Dynamic Sparse Transformer for Exemplar-Guided Image Generation",
ECCV 2022; https://github.com/Huage001/DynaST, ``models/networks/dynast_transformer.py``. Written from that code's
computation (the order of its operations kept, so that the same weights give the same bits):

- **Dynamic pruning**: a second, low-dimensional pair of projections scores every (query, candidate) pair; the
  candidates it scores at or below 0 are dropped from the attention (``mask = [score > 0]``), with the gradient of
  a sigmoid in place of the step's (:class:`SignWithSigmoidGrad`). The attention is not renormalised after
  pruning: its remaining mass is the query's *confidence*, and ``1 - confidence`` of the output comes from the
  query's own SPADE features (:mod:`.network`).
- **Dense** (:func:`dense_attention`): every query against every key of the 1/8 level; the pruning score is divided
  by its width; the correlation by ``sqrt(width)``.
- **Inter-scale** (:func:`inter_scale_attention`): at the next finer level each 2×2 window of queries attends to the
  2×2 children of its parent's ``top_k`` matches (4·k candidates).
- **Inner-scale** (:func:`inner_scale_attention`): each query attends to its own ``top_k`` matches and to those of its
  four neighbours shifted back by one position (5·k candidates); the scores are not divided by a width there, the
  correlation by the ``smooth`` temperature (0.01 in the released options).

The training warp (``warp_values``: the exemplar pooled to the level) is a softmax of the same correlation whose
*kept* candidates are filled with -1e4 (``masked_fill(cor, mask.bool(), -1e4)`` in the released code), so it averages
the **pruned** candidates; the warp loss trains the correlation through it. That is the released code's behaviour and
is kept; the paper describes the warp as the attention's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: the value the training warp's softmax gives the kept candidates (the released code's masked_fill)
KEPT_FILL = -1e4


class SignWithSigmoidGrad(torch.autograd.Function):
    """``[x > 0]`` forward; the sigmoid's derivative ``σ(x)(1 - σ(x))`` backward (a straight-through surrogate)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        sigmoid = torch.sigmoid(x)
        ctx.save_for_backward(sigmoid)
        return (x > 0).float()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (sigmoid,) = ctx.saved_tensors
        return grad * sigmoid * (1 - sigmoid)


def _positions(x: Tensor) -> Tensor:
    """B×C×H×W -> B×HW×C."""
    return x.flatten(2).transpose(-1, -2).contiguous()


def _windows(x: Tensor) -> Tensor:
    """B×C×H×W -> B×(H/2·W/2)×4×C: each 2×2 window's four positions in row-major order."""
    b, c, h, w = x.shape
    return F.unfold(x, kernel_size=2, stride=2).view(b, c, 4, (h // 2) * (w // 2)).permute(0, 3, 2, 1).contiguous()


def _fold_windows(x: Tensor, size: tuple[int, int]) -> Tensor:
    """B×(H/2·W/2)×4×C -> B×C×H×W (the inverse of :func:`_windows`)."""
    b, n = x.shape[:2]
    return F.fold(x.permute(0, 3, 2, 1).contiguous().view(b, -1, n), output_size=size, kernel_size=2, stride=2)


def _gather(rows: Tensor, index: Tensor) -> Tensor:
    """``rows`` B×N×...: for each batch element, the rows at ``index`` (B×...): flattened as the released code."""
    b, n = rows.shape[:2]
    offset = torch.arange(b, device=index.device).view(b, *([1] * (index.dim() - 1))) * n
    return rows.reshape(b * n, *rows.shape[2:])[(index + offset).view(-1)]


def dense_attention(
    q: Tensor,
    k: Tensor,
    q_prune: Tensor,
    k_prune: Tensor,
    v: Tensor,
    smooth: float | None = None,
    warp_values: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Full attention with dynamic pruning. Inputs B×C×H×W (queries and keys may differ in size).

    Returns the attended values (B×C_v×H_q×W_q), the correlation (B×N_q×N_k, before the softmax), the confidence
    (B×1×H_q×W_q) and the warp of ``warp_values`` (or None)."""
    b, c_qk, h_q, w_q = q.shape
    query, key = _positions(q), k.flatten(2)
    values = _positions(v)
    mask = SignWithSigmoidGrad.apply(torch.bmm(_positions(q_prune), k_prune.flatten(2)) / k_prune.shape[1])
    smooth = c_qk**0.5 if smooth is None else smooth
    cor = torch.bmm(query, key) / smooth
    masked = torch.softmax(cor, dim=-1) * mask
    out = torch.bmm(masked, values).transpose(-1, -2).contiguous().view(b, -1, h_q, w_q)
    conf = masked.sum(-1).view(b, 1, h_q, w_q)
    warp = None
    if warp_values is not None:
        attn = torch.softmax(torch.masked_fill(cor, mask.bool(), KEPT_FILL), dim=-1)
        warp = torch.bmm(attn, _positions(warp_values)).transpose(-1, -2).contiguous().view(b, -1, h_q, w_q)
    return out, cor, conf, warp


def inter_scale_attention(
    q: Tensor,
    k: Tensor,
    q_prune: Tensor,
    k_prune: Tensor,
    v: Tensor,
    parent_top_k: Tensor,
    smooth: float,
    warp_values: Tensor | None = None,
    need_index: bool = True,
) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
    """Each 2×2 query window against the 2×2 children of its parent's matches.

    ``parent_top_k``: B×(H_q/2·W_q/2)×k, indices into the coarser level's key positions (row-major). Returns the
    attended values, this level's top-k indices (B×H_q·W_q×k, or None), the confidence and the warp (or None)."""
    h_q, w_q = q.shape[2:]
    h_k, w_k = k.shape[2:]
    b, n_win, top_k = parent_top_k.shape
    query, query_prune = _windows(q), _windows(q_prune)  # B×n_win×4×C

    def candidates(x: Tensor) -> Tensor:  # B×n_win×(4k)×C: the children of the parents' matches
        return _gather(_windows(x), parent_top_k).view(b, n_win, top_k, 4, -1).flatten(-3, -2).contiguous()

    keys = candidates(k).transpose(-1, -2).contiguous()
    keys_prune = candidates(k_prune).transpose(-1, -2).contiguous()
    cor = torch.matmul(query, keys) / smooth  # B×n_win×4×4k
    attn = torch.softmax(cor, dim=-1)
    mask = SignWithSigmoidGrad.apply(torch.matmul(query_prune, keys_prune))
    masked = mask * attn
    out = _fold_windows(torch.matmul(masked, candidates(v)), (h_q, w_q))
    conf = F.fold(masked.sum(-1).transpose(-2, -1).contiguous(), output_size=(h_q, w_q), kernel_size=2, stride=2)
    warp = None
    if warp_values is not None:
        warp_attn = torch.softmax(torch.masked_fill(cor, mask.bool(), KEPT_FILL), dim=-1)
        warp = _fold_windows(torch.matmul(warp_attn, candidates(warp_values)), (h_q, w_q))
    top = None
    if need_index:
        py, px = parent_top_k // (w_k // 2), parent_top_k % (w_k // 2)
        children = torch.stack(
            [
                2 * py * w_k + 2 * px,
                2 * py * w_k + 2 * px + 1,
                (2 * py + 1) * w_k + 2 * px,
                (2 * py + 1) * w_k + 2 * px + 1,
            ],
            dim=-1,
        )  # B×n_win×k×4
        children = children.flatten(-2, -1).unsqueeze(2).contiguous().repeat(1, 1, 4, 1)  # B×n_win×4×4k
        top = children.gather(dim=-1, index=torch.topk(attn, top_k, -1)[1])  # B×n_win×4×k
        top = top.view(b, h_q // 2, w_q // 2, 2, 2, top_k).permute(0, 1, 3, 2, 4, 5).contiguous()
        top = top.view(b, h_q * w_q, top_k)
    return out, top, conf, warp


def _neighbour_candidates(top_k_index: Tensor, h: int, w: int, h_k: int, w_k: int) -> Tensor:
    """B×H·W×5k: each position's own matches, then its upper, lower, left and right neighbours' matches moved one
    step back towards it (clipped at the border; the image's border replicates its neighbours)."""
    b, _, top_k = top_k_index.shape
    grid = top_k_index.view(b, h, w, top_k)
    padded = F.pad(grid.permute(0, 3, 1, 2).contiguous().float(), [1, 1, 1, 1], mode="replicate")
    padded = padded.permute(0, 2, 3, 1).contiguous().long()
    ys, xs = padded // w_k, padded % w_k
    up = (ys[:, :-2, 1:-1] + 1).clip(max=h_k - 1) * w_k + xs[:, :-2, 1:-1]
    down = (ys[:, 2:, 1:-1] - 1).clip(min=0) * w_k + xs[:, 2:, 1:-1]
    left = ys[:, 1:-1, :-2] * w_k + (xs[:, 1:-1, :-2] + 1).clip(max=w_k - 1)
    right = ys[:, 1:-1, 2:] * w_k + (xs[:, 1:-1, 2:] - 1).clip(min=0)
    return torch.cat([grid, up, down, left, right], dim=-1).flatten(1, 2).contiguous()


def inner_scale_attention(
    q: Tensor,
    k: Tensor,
    q_prune: Tensor,
    k_prune: Tensor,
    v: Tensor,
    top_k_index: Tensor,
    smooth: float,
    warp_values: Tensor | None = None,
    need_index: bool = True,
) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
    """Each query against its own and its neighbours' matches at the same level (``top_k_index``: B×H_q·W_q×k).
    Returns as :func:`inter_scale_attention`."""
    h_q, w_q = q.shape[2:]
    h_k, w_k = k.shape[2:]
    b, _, top_k = top_k_index.shape
    index = _neighbour_candidates(top_k_index, h_q, w_q, h_k, w_k)  # B×N_q×5k
    query, query_prune = _positions(q), _positions(q_prune)  # B×N_q×C

    def candidates(x: Tensor) -> Tensor:  # B×N_q×5k×C
        return _gather(_positions(x), index).view(b, h_q * w_q, top_k * 5, -1)

    keys = candidates(k).transpose(-1, -2).contiguous()
    keys_prune = candidates(k_prune).transpose(-1, -2).contiguous()
    cor = torch.sum(query.unsqueeze(-1) * keys, dim=-2) / smooth  # B×N_q×5k
    attn = torch.softmax(cor, dim=-1)
    mask = SignWithSigmoidGrad.apply(torch.sum(query_prune.unsqueeze(-1) * keys_prune, dim=-2))
    masked = mask * attn
    out = torch.sum(masked.unsqueeze(-1) * candidates(v), dim=-2)
    out = out.transpose(-1, -2).contiguous().view(b, -1, h_q, w_q).contiguous()
    conf = masked.sum(dim=-1).view(b, 1, h_q, w_q)
    warp = None
    if warp_values is not None:
        warp_attn = torch.softmax(torch.masked_fill(cor, mask.bool(), KEPT_FILL), dim=-1)
        warp = torch.sum(warp_attn.unsqueeze(-1) * candidates(warp_values), dim=-2)
        warp = warp.transpose(-1, -2).contiguous().view(b, -1, h_q, w_q).contiguous()
    top = index.gather(dim=-1, index=torch.topk(attn, top_k, dim=-1)[1]) if need_index else None
    return out, top, conf, warp
