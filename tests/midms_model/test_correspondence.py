"""Chunked warp, cycle-consistency confidence: exact behaviour on hand-made correspondences."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from midms.models.midms.matching import confidence_mask, coordinate_grid, cycle_error, soft_flows, soft_warp_chunked
from midms.nn.correspondence import correlation, soft_warp


def _onehot_features(index: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """1×N×h×w features: position p carries the unit vector e_index[p] (so <q_p, k_j> = [index[p] == j])."""
    return F.one_hot(index, h * w).float().T.reshape(1, h * w, h, w)


def test_onehot_correlation_warp_is_exact_permutation():
    h = w = 4
    perm = torch.randperm(h * w, generator=torch.Generator().manual_seed(0))
    query = _onehot_features(perm, h, w)
    key = _onehot_features(torch.arange(h * w), h, w)
    values = torch.randn(1, 3, h, w)
    warped = soft_warp_chunked(query, key, values, temperature=0.005, chunk=5)
    expected = values.flatten(2)[..., perm].reshape(1, 3, h, w)
    assert torch.equal(warped, expected)


def test_chunked_warp_matches_dense_and_clamps_negatives():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 8, 6, 6, generator=g), torch.randn(2, 8, 6, 6, generator=g)
    q, k = q / q.norm(dim=1, keepdim=True), k / k.norm(dim=1, keepdim=True)
    v = torch.randn(2, 5, 6, 6, generator=g)
    dense = soft_warp(correlation(q, k, normalize=False).clamp(min=0), v, temperature=0.05)
    assert torch.allclose(soft_warp_chunked(q, k, v, temperature=0.05, chunk=7), dense, atol=1e-5)
    unclamped = soft_warp(correlation(q, k, normalize=False), v, temperature=0.05)
    assert not torch.allclose(dense, unclamped, atol=1e-3)  # the clamp at 0 matters


def test_chunked_warp_gradients_match_dense():
    g = torch.Generator().manual_seed(2)
    q = torch.randn(1, 4, 5, 5, generator=g).requires_grad_()
    k = torch.randn(1, 4, 5, 5, generator=g)
    v = torch.randn(1, 3, 5, 5, generator=g)
    soft_warp_chunked(q, k, v, 0.5, chunk=4).square().sum().backward()
    g1 = q.grad.clone()
    q.grad = None
    soft_warp(correlation(q, k, normalize=False).clamp(min=0), v, 0.5).square().sum().backward()
    assert torch.allclose(g1, q.grad, atol=1e-5)


def test_small_latents_are_warped_several_images_per_block():
    """Latents of 16 positions with chunk=32: two images a block (the last block holds one), the same warp
    and gradients as the dense reference, and no block over chunk × N."""
    g = torch.Generator().manual_seed(3)
    q = torch.randn(5, 4, 4, 4, generator=g)
    k = torch.randn(5, 4, 4, 4, generator=g)
    q, k = (q / q.norm(dim=1, keepdim=True)).requires_grad_(), k / k.norm(dim=1, keepdim=True)
    v = torch.randn(5, 3, 4, 4, generator=g)
    shapes: list[tuple[int, ...]] = []
    orig = torch.Tensor.__matmul__

    def spy(a, b):
        out = orig(a, b)
        shapes.append(tuple(out.shape))
        return out

    torch.Tensor.__matmul__ = spy
    try:
        grouped = soft_warp_chunked(q, k, v, temperature=0.05, chunk=32)
    finally:
        torch.Tensor.__matmul__ = orig
    assert [s for s in shapes if s[-1] == 16] == [(2, 16, 16), (2, 16, 16), (1, 16, 16)]  # the correlations
    grouped.square().sum().backward()
    g_grouped, q.grad = q.grad.clone(), None
    dense = soft_warp(correlation(q, k, normalize=False).clamp(min=0), v, temperature=0.05)
    assert torch.allclose(grouped, dense, atol=1e-5)
    dense.square().sum().backward()
    assert torch.allclose(g_grouped, q.grad, atol=1e-5)


def test_identity_correspondence_gives_full_confidence():
    h = w = 8
    feats = _onehot_features(torch.arange(h * w), h, w)
    map_fw, map_bw, flow_fw, flow_bw = soft_flows(feats, feats)
    assert torch.allclose(map_fw, coordinate_grid(h, w), atol=1e-6)
    for mode in ("official", "forward_backward"):
        mask = confidence_mask(cycle_error(map_fw, flow_fw, flow_bw, mode))
        assert mask.shape == (1, 1, h, w) and torch.equal(mask, torch.ones_like(mask))


def test_two_to_one_correspondence_fails_cycle_check_there():
    h = w = 8
    index = torch.arange(h * w)
    # the 2×2 blocks at rows/cols 0-1 and at rows/cols 6-7 both match the block at rows/cols 6-7
    far = [r * w + c for r in (0, 1) for c in (0, 1)]
    near = [r * w + c for r in (6, 7) for c in (6, 7)]
    index[far] = torch.tensor(near)
    query = _onehot_features(index, h, w)
    key = _onehot_features(torch.arange(h * w), h, w)
    map_fw, _, flow_fw, flow_bw = soft_flows(query, key)
    for mode in ("official", "forward_backward"):
        mask = confidence_mask(cycle_error(map_fw, flow_fw, flow_bw, mode))[0, 0]
        assert mask[:2, :2].sum() == 0, mode  # the two-to-one block is not confident
        assert mask[2:6, 2:6].eq(1).all(), mode  # untouched one-to-one positions stay confident
    # the textbook check also flags the block whose match was claimed twice
    fb = confidence_mask(cycle_error(map_fw, flow_fw, flow_bw, "forward_backward"))[0, 0]
    assert fb[6:, 6:].sum() == 0


def test_chunked_warp_peak_memory_is_linear_in_batch():
    """The chunked path never holds a B×N×N correlation: a 4096×4096 block would be 64 MiB per image."""
    n = 32
    q = torch.randn(3, 8, n, n)
    k = torch.randn(3, 8, n, n)
    seen: list[int] = []
    orig = torch.Tensor.__matmul__

    def spy(a, b):
        out = orig(a, b)
        seen.append(out.numel())
        return out

    torch.Tensor.__matmul__ = spy
    try:
        soft_warp_chunked(q, k, torch.randn(3, 2, n, n), chunk=64)
    finally:
        torch.Tensor.__matmul__ = orig
    assert max(seen) <= 64 * n * n  # one block of 64 query rows × all keys, independent of the batch


def _official_warp(query: torch.Tensor, key: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The official first matching, written out from cvlab-kaist/MIDMs: ``models/midms.py`` centres each feature
    vector and divides it by its norm (no epsilon); ``models/base/correlation.py`` ``Correlation.correlation``
    divides both by their norm + 1e-5 again, multiplies and clamps at 0; ``util/util.py`` ``soft_warp`` takes the
    softmax at alpha = 0.005 over exemplar positions and multiplies the values."""
    b, c, h, w = query.shape
    feats = []
    for x in (query, key):
        x = x - x.mean(dim=1, keepdim=True)
        x = torch.div(x, torch.norm(x, 2, 1, keepdim=True))
        x = x.view(b, c, -1)
        feats.append(x / (x.norm(dim=1, p=2, keepdim=True) + 1e-5))
    corr = torch.bmm(feats[0].transpose(1, 2), feats[1]).clamp(min=0)  # B×Nq×Nk
    attn = F.softmax(corr / 0.005, dim=-1)
    return (
        torch.matmul(attn, values.reshape(b, values.shape[1], h * w).permute(0, 2, 1))
        .permute(0, 2, 1)
        .reshape(b, -1, h, w)
    )


def test_the_warp_equals_the_official_normalisation_and_warp_to_the_last_bit():
    from midms.models.midms.matching import matching_features

    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 32, 16, 16, generator=g) * 3, torch.randn(2, 32, 16, 16, generator=g) * 3
    k[:, :, :8] = q[:, :, :8] + 0.01 * torch.randn(2, 32, 8, 16, generator=g)  # sharp matches, as trained features
    values = torch.randn(2, 3, 16, 16, generator=g)
    ours = soft_warp_chunked(matching_features(q), matching_features(k), values, chunk=64)  # blocks of 64 rows
    assert torch.equal(ours, _official_warp(q, k, values))
    # without the correlation's second normalisation the warp moves (the 1 / (1 + 1e-5) scale at temperature 0.005)
    from midms.nn.correspondence import normalize_features

    once = soft_warp_chunked(normalize_features(q), normalize_features(k), values, chunk=4096)
    assert not torch.equal(once, ours)


def test_only_large_blocks_are_recomputed_in_the_backward_pass(monkeypatch):
    """A block of at most CHECKPOINT_ABOVE correlation elements is kept for the backward pass (one forward per
    block), a larger one is recomputed there (two): the warp and its gradients are the same either way."""
    from midms.models.midms import matching

    g = torch.Generator().manual_seed(5)
    q0, k0 = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    v = torch.randn(3, 2, 8, 8, generator=g)
    calls: list[int] = []
    block = matching._block

    def counted(*args):
        calls.append(1)
        return block(*args)

    monkeypatch.setattr(matching, "_block", counted)
    results = {}
    for limit in (1 << 20, 1000):  # blocks of 2 images × 64 rows × 64 keys = 8192 elements (chunk 128)
        monkeypatch.setattr(matching, "CHECKPOINT_ABOVE", limit)
        calls.clear()
        q, k = q0.clone().requires_grad_(), k0.clone().requires_grad_()
        out = soft_warp_chunked(q, k, v, temperature=0.05, chunk=128)
        out.square().sum().backward()
        results[limit] = (out.detach(), q.grad, k.grad, len(calls))
    kept, recomputed = results[1 << 20], results[1000]
    assert kept[3] == 2 and recomputed[3] == 4  # two blocks: once each, or again in the backward pass
    for a, b in zip(kept[:3], recomputed[:3], strict=True):
        assert torch.allclose(a, b, atol=1e-6)
