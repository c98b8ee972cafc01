"""CoCosNet v2 (github.com/microsoft/CoCosNet-v2): PatchMatch's pieces against plain loops, the warps as softmax
averages, the released DeepFashion-HD layout loaded strictly, and the losses and weights of its training command.

The released layout (``tests/support/cocosnet_v2_released_layout.json``) lists every tensor of the official
``NoVGGHPMCorrespondence`` and ``SPADEGenerator``. The official networks themselves were compared outside the
repository on the same weights and inputs (with the sizes the official code writes in, 64 ... 512, taken from the
features, so that it runs at 128 px): output, the four warps, the cycle warp and the domain term identical to the
last bit, in evaluation and in training (spectral norm's power iteration held), with the same seed for Python's
``random`` (the propagation order).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from midms.baselines.cocosnet_v2.correspondence import CorrespondenceV2
from midms.baselines.cocosnet_v2.generator import GeneratorV2
from midms.baselines.cocosnet_v2.model import CoCosNetV2
from midms.baselines.cocosnet_v2.patch_match import (
    PatchMatchGRU,
    evaluate,
    indices_to_offsets,
    offsets_to_indices,
    propagate,
)
from midms.baselines.cocosnet_v2.released import load_released
from released_layouts import official_state

from midms.data.contract import DataSpec
from midms.errors import UserError

# the README's DeepFashion-HD command and options/: --temperature 0.01, --weight_warp_self 500, --weight_warp_cycle 1,
# --weight_novgg_featpair 10 (default), --weight_contextual 1 (default), weight_vgg 10; --batchSize 16 on 8 GPUs
TEMPERATURE, WARP_SELF, WARP_CYCLE, NOVGG, CONTEXTUAL, VGG, PER_GPU = 0.01, 500.0, 1.0, 10.0, 1.0, 10.0, 2


def test_offsets_and_indices_are_inverse_on_the_map_and_clamped_off_it():
    indices = torch.tensor([[[[0.0, 5.0], [15.0, 10.0]]]]).expand(1, 1, 2, 2)
    big = torch.arange(16.0).view(1, 1, 4, 4)
    rows, cols = indices_to_offsets(big)
    assert torch.equal(rows, torch.zeros_like(rows)) and torch.equal(cols, torch.zeros_like(cols))
    rows, cols = indices_to_offsets(torch.full((1, 1, 4, 4), 5.0))  # every position points at (1, 1)
    assert rows[0, 0, 3, 0] == 1 - 3 and cols[0, 0, 0, 3] == 1 - 3
    assert torch.equal(offsets_to_indices(rows, cols), torch.full((1, 1, 4, 4), 5.0))
    far = offsets_to_indices(torch.full((1, 1, 4, 4), 10.0), torch.full((1, 1, 4, 4), -10.0))
    assert torch.equal(far, torch.full((1, 1, 4, 4), 12.0))  # clamped to the last row, the first column
    assert indices.shape == (1, 1, 2, 2)


def test_propagation_appends_the_neighbours_candidates_with_zero_offsets_past_the_border():
    g = torch.Generator().manual_seed(0)
    rows, cols = (
        torch.randint(-2, 3, (1, 2, 3, 3), generator=g).float(),
        torch.randint(-2, 3, (1, 2, 3, 3), generator=g).float(),
    )
    r, c = propagate(rows, cols, horizontal=True)
    assert r.shape == (1, 6, 3, 3)
    for y in range(3):
        for x in range(3):
            left = rows[0, :, y, x - 1] if x > 0 else torch.zeros(2)
            right = rows[0, :, y, x + 1] if x < 2 else torch.zeros(2)
            assert torch.equal(r[0, :, y, x], torch.cat([left, rows[0, :, y, x], right]))
    r, _ = propagate(rows, cols, horizontal=False)
    assert torch.equal(r[0, :2, 1, 2], rows[0, :, 0, 2]) and torch.equal(r[0, 4:, 2, 1], torch.zeros(2))


def test_evaluation_keeps_the_best_third_by_correlation():
    g = torch.Generator().manual_seed(1)
    b, c, h, w, k = 2, 4, 3, 3, 6
    left, right = torch.randn(b, c, h * w, generator=g), torch.randn(b, c, h * w, generator=g)
    keys = right.transpose(0, 1).contiguous().view(c, -1)
    rows = torch.randint(-1, 2, (b, k, h, w), generator=g).float()
    cols = torch.randint(-1, 2, (b, k, h, w), generator=g).float()
    kept_rows, kept_cols, scores = evaluate(left, keys, rows, cols, TEMPERATURE)
    assert kept_rows.shape == (b, k // 3, h, w)
    targets = offsets_to_indices(rows, cols).long()
    kept = offsets_to_indices(kept_rows, kept_cols).long()
    for bi in range(b):
        for p in range(h * w):
            y, x = divmod(p, w)
            cand = targets[bi, :, y, x].tolist()
            logits = torch.tensor([float(left[bi, :, p] @ right[bi, :, t]) / TEMPERATURE for t in cand])
            probs = torch.softmax(logits, 0)
            best = torch.topk(probs, k // 3).indices.tolist()
            assert kept[bi, :, y, x].tolist() == [cand[i] for i in best]
            torch.testing.assert_close(scores[bi, :, p], probs[best])


def test_the_patch_match_warp_is_the_softmax_average_of_its_final_candidates_and_the_gru_gets_no_gradient():
    torch.manual_seed(2)
    random.seed(0)
    pm = PatchMatchGRU(4, TEMPERATURE, iterations=2, hidden=8, motion=40)
    left, right = torch.randn(1, 4, 4, 4, requires_grad=True), torch.randn(1, 4, 4, 4)
    values = torch.randn(1, 3, 16)
    rows = torch.randint(-1, 2, (1, 16, 4, 4)).float()
    cols = torch.randint(-1, 2, (1, 16, 4, 4)).float()
    candidates, warp, extra = pm(left, right, values, rows, cols, extra=values * 2)
    assert candidates.shape == (1, 16, 16) and extra is not None
    for p in range(16):
        logits = torch.stack([left[0, :, p // 4, p % 4] @ right[0, :, t // 4, t % 4] for t in candidates[0, p]])
        weights = torch.softmax(logits / TEMPERATURE, 0)
        torch.testing.assert_close(warp[0, :, p], (values[0][:, candidates[0, p]] * weights).sum(1))
    torch.testing.assert_close(extra, 2 * warp)
    warp.sum().backward()
    assert left.grad.abs().sum() > 0  # through the final softmax
    assert all(p.grad is None for p in pm.parameters())  # offsets become indices under no_grad


def test_the_dense_level_warps_the_pooled_exemplar_and_its_cycle_goes_back_through_the_transpose():
    torch.manual_seed(3)
    corr = CorrespondenceV2(5, nef=4, iterations=1, gru_hidden=8, gru_motion=40, spade_hidden=8).eval()
    sem, ex, ex_sem = torch.rand(1, 5, 64, 64), torch.rand(1, 3, 64, 64) * 2 - 1, torch.rand(1, 5, 64, 64)
    labels = F.one_hot(torch.randint(0, 4, (1, 64, 64)), 4).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        random.seed(1)
        out = corr(sem, ex, ex_sem, cycle=True, extra=labels)
    assert [w.shape[-1] for w in out["warps"]] == [8, 16, 32, 64]
    assert [w.shape[1] for w in out["extra_warps"]] == [4] * 4
    for w in out["extra_warps"]:
        torch.testing.assert_close(w.sum(1), torch.ones_like(w[:, 0]))  # convex combinations of one-hot labels
    pooled = F.avg_pool2d(ex, 8).view(1, 3, 64)
    warp0 = out["warps"][0].view(1, 3, 64)
    assert warp0.min() >= pooled.min() - 1e-6 and warp0.max() <= pooled.max() + 1e-6
    assert out["warp_cycle"].shape == (1, 3, 8, 8)


def test_the_released_layout_loads_strictly_and_a_misfit_is_named(tmp_path: Path):
    corr_state, g_state = official_state("cocosnet_v2", 0, network="Corr"), official_state("cocosnet_v2", 1)
    torch.save(corr_state, tmp_path / "latest_net_Corr.pth")
    torch.save(g_state, tmp_path / "latest_net_G.pth")
    corr, gen = CorrespondenceV2(20), GeneratorV2(20)  # the released options: nef 32, ngf 64
    digests = load_released(corr, gen, tmp_path)
    assert set(digests) == {"latest_net_Corr.pth", "latest_net_G.pth"}
    ours = corr.state_dict()
    assert torch.equal(
        ours["patch_match.refine_net.gru.convq2.weight"], corr_state["patch_match.refine_net.gru.convq2.weight"]
    )
    assert torch.equal(
        ours["adaptive_model_img.layer3.1.body.1.weight"], corr_state["adaptive_model_img.layer3.1.model.1.weight"]
    )
    assert torch.equal(
        gen.state_dict()["trunk.middle.1.norm_0.shared.1.weight"], g_state["G_middle_1.norm_0.mlp_shared.1.weight"]
    )
    del g_state["up_2.conv_s.weight_orig"]
    torch.save(g_state, tmp_path / "latest_net_G.pth")
    with pytest.raises(UserError, match="up_2.conv_s.weight_orig"):
        load_released(CorrespondenceV2(20), GeneratorV2(20), tmp_path)


def _model() -> CoCosNetV2:
    torch.manual_seed(0)
    spec = DataSpec(semantic_nc=5, image_size=64, num_classes=5, has_target=False)
    settings = {"weight_warp_self": WARP_SELF, "weight_warp_cycle": WARP_CYCLE, "fm_reference_batch": PER_GPU}
    return CoCosNetV2(spec, nef=4, ngf=4, ndf=4, iterations=1, gru_hidden=8, gru_motion=40, spade_hidden=8,
                      vgg_weights="random", vgg_widths=[4, 4, 8, 8, 8], settings=settings)  # fmt: skip


def test_the_generator_terms_are_the_released_ones_with_their_weights():
    from midms.nn.losses import contextual_pyramid

    model = _model().train()
    g = torch.Generator().manual_seed(4)
    batch = {
        "semantics": torch.rand(2, 5, 64, 64, generator=g),
        "exemplar": torch.rand(2, 3, 64, 64, generator=g) * 2 - 1,
        "exemplar_semantics": torch.rand(2, 5, 64, 64, generator=g),
        "image": torch.rand(2, 3, 64, 64, generator=g) * 2 - 1,
        "paired": torch.tensor([True, False]),
    }
    random.seed(3)
    terms, out = model.generator_losses(batch)
    assert set(terms) == {"domain", "warp_cycle", "warp_self", "gan", "gan_feat", "fm", "perc", "contextual"}
    torch.testing.assert_close(terms["domain"], out["domain_loss"] * NOVGG)
    torch.testing.assert_close(
        terms["warp_cycle"], F.l1_loss(out["warp_cycle"], F.avg_pool2d(batch["exemplar"], 8)) * WARP_CYCLE
    )
    weights = torch.tensor([1.0, 0.0]) / (1 + 1e-5) * (2 / PER_GPU)
    expected = sum(
        ((w - F.avg_pool2d(batch["image"], 64 // w.shape[-1]) if w.shape[-1] < 64 else w - batch["image"]).abs()
         * weights.view(-1, 1, 1, 1)).mean() * WARP_SELF
        for w in out["warps"]
    )  # fmt: skip
    torch.testing.assert_close(terms["warp_self"], expected)
    fake_feats, ref_feats = model._vgg(out["fake"]), model._vgg(batch["exemplar"])
    torch.testing.assert_close(terms["contextual"], contextual_pyramid(fake_feats, ref_feats) * VGG * CONTEXTUAL)


def test_translation_and_the_label_warp_come_from_one_pass():
    model = _model().eval()
    batch = {
        "semantics": torch.rand(1, 5, 64, 64),
        "exemplar": torch.rand(1, 3, 64, 64),
        "exemplar_semantics": torch.rand(1, 5, 64, 64),
    }
    labels = F.one_hot(torch.randint(0, 5, (1, 64, 64)), 5).permute(0, 3, 1, 2).float()
    random.seed(5)
    fake, warp = model.translate_and_warp(batch, labels)
    random.seed(5)
    assert torch.equal(fake, model.translate(batch))  # the labels enter no computation of the output
    torch.testing.assert_close(warp.sum(1), torch.ones(1, 64, 64))
    with pytest.raises(UserError, match="multiple of 32"):
        CoCosNetV2(DataSpec(semantic_nc=5, image_size=48, num_classes=5, has_target=False), vgg_weights=None)
