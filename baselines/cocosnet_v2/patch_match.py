"""CoCosNet v2's hierarchical PatchMatch with a ConvGRU refinement (one level of the matching pyramid).

Zhou, Zhang, Chen, Yuan, Wen, Wen, Ma and Chen, "CoCosNet v2: Full-Resolution Correspondence Learning for Image
Translation", CVPR 2021; https://github.com/microsoft/CoCosNet-v2, ``models/networks/patch_match.py``, ``convgru.py``
and ``ops.py``. What it computes follows that code (the order of its operations kept):

- every query position holds 16 candidate matches as integer offsets; one PatchMatch step propagates them from the
  left and right (or upper and lower) neighbours, the border's missing neighbour standing for offset 0 (48
  candidates), keeps the best third by the softmax of the feature correlation over ``temperature``, then does the same
  in the other direction; the direction taken first is a coin flip of Python's ``random`` (seeded by the run's seed);
- a RAFT-style update block (a motion encoder of the 16 correlations and offsets, a separable ConvGRU of width 32,
  a flow head) adds real-valued deltas to the offsets; the offsets are rounded down to indices under ``no_grad``,
  so the update block and the initial layer receive no gradient (their weights still shape the forward pass);
- after ``iterations`` steps, the warp is the softmax over the 16 final candidates of their correlation, applied
  to the exemplar at the level's resolution (the gradient reaches the features through this softmax).

Square feature maps only, as the official indexing (``ops.py`` builds its grid with the width and height swapped).
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: candidates per position (``convgru.py``'s ``candidate_num``), the GRU's hidden width and the share kept per step
CANDIDATES, HIDDEN, KEEP_ONE_IN = 16, 32, 3


def _grid(shape: torch.Size, device: torch.device) -> tuple[Tensor, Tensor]:
    """Row and column coordinates, B×1×H×W (the official ``batch_meshgrid``, for square maps)."""
    b, _, h, w = shape
    rows, cols = torch.meshgrid(torch.arange(0.0, w, device=device), torch.arange(0.0, h, device=device), indexing="ij")
    return rows.expand(b, -1, -1).unsqueeze(1), cols.expand(b, -1, -1).unsqueeze(1)


def indices_to_offsets(indices: Tensor) -> tuple[Tensor, Tensor]:
    """Flat target indices (B×K×H×W, float) -> row and column offsets from each position."""
    rows, cols = _grid(indices.shape, indices.device)
    width = indices.shape[3]
    return indices // width - rows, indices % width - cols


def offsets_to_indices(offset_rows: Tensor, offset_cols: Tensor) -> Tensor:
    """Row and column offsets -> flat target indices, clamped to the map (float)."""
    rows, cols = _grid(offset_rows.shape, offset_rows.device)
    h, w = offset_rows.shape[2:]
    r = torch.clamp(rows + offset_rows, 0, h - 1)
    c = torch.clamp(cols + offset_cols, 0, w - 1)
    return r * w + c


def _flat_indices(offset_rows: Tensor, offset_cols: Tensor) -> Tensor:
    """B×HW×K long indices into the batch-flattened key positions."""
    b, k, h, w = offset_rows.shape
    indices = offsets_to_indices(offset_rows, offset_cols).view(b, k, h * w).permute(0, 2, 1).long()
    return indices + (torch.arange(b, device=indices.device).long() * (h * w)).view(-1, 1, 1)


def _candidate_costs(queries: Tensor, keys_by_column: Tensor, flat: Tensor, temperature: float) -> Tensor:
    """B×HW×K correlations (over ``temperature``) of each query with its K candidates, one candidate at a time."""
    b, c = queries.shape[:2]
    costs = []
    for i in range(flat.shape[-1]):
        selected = keys_by_column[:, flat[:, :, i].contiguous().view(-1)].view(c, b, -1).transpose(0, 1)
        costs.append(torch.sum(queries * selected, dim=1, keepdim=True) / temperature)
    return torch.cat(costs, dim=1).transpose(1, 2)


def propagate(offset_rows: Tensor, offset_cols: Tensor, horizontal: bool) -> tuple[Tensor, Tensor]:
    """Each position's candidates, then its left (upper) and right (lower) neighbour's; zeros past the border."""
    dim = 3 if horizontal else 2

    def spread(x: Tensor) -> Tensor:
        zeros = torch.zeros_like(x.narrow(dim, 0, 1))
        before = torch.cat((zeros, x.narrow(dim, 0, x.shape[dim] - 1)), dim=dim)
        after = torch.cat((x.narrow(dim, 1, x.shape[dim] - 1), zeros), dim=dim)
        return torch.cat((before, x, after), dim=1)

    return spread(offset_rows), spread(offset_cols)


def evaluate(
    queries: Tensor, keys_by_column: Tensor, offset_rows: Tensor, offset_cols: Tensor, temperature: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Keep the best third of the candidates by their softmax-normalised correlation; returns the kept offsets and
    their scores (B×K/3×HW)."""
    b, k, h, w = offset_rows.shape
    flat = _flat_indices(offset_rows, offset_cols)
    costs = F.softmax(_candidate_costs(queries, keys_by_column, flat, temperature), dim=-1)
    top_costs, top = torch.topk(costs, k // KEEP_ONE_IN, dim=-1)
    indices = offsets_to_indices(offset_rows, offset_cols).view(b, k, h * w).permute(0, 2, 1).long()
    kept = torch.gather(indices, -1, top).permute(0, 2, 1).view(b, -1, h, w).float()
    rows, cols = indices_to_offsets(kept)
    return rows, cols, top_costs.permute(0, 2, 1)


class MotionEncoder(nn.Module):
    """``BasicMotionEncoder``: correlations and offsets through convolutions, concatenated with the offsets
    (``width`` 64 as released; its output is ``width`` channels, the offsets included)."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.convc1 = nn.Conv2d(CANDIDATES, width, 1)
        self.convc2 = nn.Conv2d(width, width, 3, padding=1)
        self.convf1 = nn.Conv2d(2 * CANDIDATES, width, 7, padding=3)
        self.convf2 = nn.Conv2d(width, width, 3, padding=1)
        self.conv = nn.Conv2d(2 * width, width - 2 * CANDIDATES, 3, padding=1)

    def forward(self, flow: Tensor, corr: Tensor) -> Tensor:
        cor = F.relu(self.convc2(F.relu(self.convc1(corr))))
        flo = F.relu(self.convf2(F.relu(self.convf1(flow))))
        return torch.cat([F.relu(self.conv(torch.cat([cor, flo], dim=1))), flow], dim=1)


class SepConvGRU(nn.Module):
    """A ConvGRU with a 1×5 then a 5×1 pass (RAFT's ``SepConvGRU``)."""

    def __init__(self, hidden: int = HIDDEN, inputs: int = 64) -> None:
        super().__init__()
        for axis, (kernel, pad) in (("1", ((1, 5), (0, 2))), ("2", ((5, 1), (2, 0)))):
            for gate in ("z", "r", "q"):
                self.add_module(f"conv{gate}{axis}", nn.Conv2d(hidden + inputs, hidden, kernel, padding=pad))

    def forward(self, h: Tensor, x: Tensor) -> Tensor:
        for axis in ("1", "2"):
            hx = torch.cat([h, x], dim=1)
            z = torch.sigmoid(getattr(self, f"convz{axis}")(hx))
            r = torch.sigmoid(getattr(self, f"convr{axis}")(hx))
            q = torch.tanh(getattr(self, f"convq{axis}")(torch.cat([r * h, x], dim=1)))
            h = (1 - z) * h + z * q
        return h


class FlowHead(nn.Module):
    def __init__(self, inputs: int = HIDDEN, hidden: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, 2 * CANDIDATES, 3, padding=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.conv2(F.relu(self.conv1(x)))
        return torch.split(x, [CANDIDATES, CANDIDATES], dim=1)


class UpdateBlock(nn.Module):
    """``BasicUpdateBlock``: hidden state and offset deltas from the correlations and offsets (released widths:
    hidden 32, motion 64; the tiny size narrows them)."""

    def __init__(self, hidden: int = HIDDEN, motion: int = 64) -> None:
        super().__init__()
        self.encoder = MotionEncoder(motion)
        self.gru = SepConvGRU(hidden, motion)
        self.flow_head = FlowHead(hidden, 2 * hidden)

    def forward(self, hidden: Tensor, corr: Tensor, flow: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        hidden = self.gru(hidden, self.encoder(flow, corr))
        delta_rows, delta_cols = self.flow_head(hidden)
        return hidden, delta_rows, delta_cols


class PatchMatchGRU(nn.Module):
    """``PatchMatchGRU``: ``iterations`` PatchMatch steps with GRU refinement, then the softmax warp."""

    def __init__(
        self,
        feature_channels: int,
        temperature: float = 0.01,
        iterations: int = 5,
        hidden: int = HIDDEN,
        motion: int = 64,
    ) -> None:
        super().__init__()
        self.temperature, self.iterations = temperature, iterations
        norm, relu = nn.InstanceNorm2d(hidden, affine=False), nn.ReLU()
        self.initial_layer = nn.Sequential(
            nn.Conv2d(2 * feature_channels, hidden, 3, padding=1),
            norm,
            relu,
            nn.Conv2d(hidden, hidden, 3, padding=1),
            norm,
            relu,
        )
        self.refine_net = UpdateBlock(hidden, motion)

    def step(self, queries: Tensor, keys: Tensor, rows: Tensor, cols: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One PatchMatch step: propagate and evaluate in one direction, then the other (a coin flip first)."""
        order = (True, False) if random.random() < 0.5 else (False, True)
        corr = None
        for horizontal in order:
            rows, cols = propagate(rows, cols, horizontal)
            rows, cols, corr = evaluate(queries, keys, rows, cols, self.temperature)
        return rows, cols, corr

    def forward(
        self, left: Tensor, right: Tensor, values: Tensor, rows: Tensor, cols: Tensor, extra: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """``left``/``right``: B×C×H×W query and key features; ``values``: B×V×HW to warp; ``rows``/``cols``: the
        initial B×16×H×W offsets; ``extra``: other B×V'×HW values warped by the same weights (labels, for the
        matching accuracy). Returns the final candidates (B×HW×16 indices into the level's positions, in the order
        of the last evaluation), the warp (B×V×HW) and the extra values' warp."""
        b, c, h, w = left.shape
        hidden = self.initial_layer(torch.cat((left, right), dim=1))
        queries = left.view(b, -1, h * w)
        keys = right.view(b, -1, h * w).transpose(0, 1).contiguous().view(c, -1)
        flat = candidates = None
        for _ in range(self.iterations):
            with torch.no_grad():
                rows, cols, corr = self.step(queries, keys, rows, cols)
            flow = torch.cat((rows, cols), dim=1)
            hidden, delta_rows, delta_cols = self.refine_net(hidden, corr.view(b, -1, h, w), flow)
            rows, cols = rows + delta_rows, cols + delta_cols
            with torch.no_grad():
                flat = _flat_indices(rows, cols)
                candidates = flat - (torch.arange(b, device=flat.device).long() * (h * w)).view(-1, 1, 1)
        costs = F.softmax(_candidate_costs(queries, keys, flat, self.temperature), dim=-1)
        return candidates, _weighted(values, flat, costs), None if extra is None else _weighted(extra, flat, costs)


def _weighted(values: Tensor, flat: Tensor, costs: Tensor) -> Tensor:
    """Σ_k costs_k · values[candidate k], one candidate at a time (B×V×HW)."""
    b, v = values.shape[:2]
    values_by_column = values.transpose(0, 1).contiguous().view(v, -1)
    warp = torch.zeros_like(values)
    for i in range(costs.shape[-1]):
        selected = values_by_column[:, flat[:, :, i].contiguous().view(-1)]
        warp = warp + selected.view(v, b, -1).transpose(0, 1) * costs[:, :, i].unsqueeze(dim=1)
    return warp
