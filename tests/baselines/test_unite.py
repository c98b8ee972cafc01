"""UNITE (github.com/fnzhan/UNITE): the transport against a plain Sinkhorn, the plan, branches and SEACE against their
formulas, the released ADE20K layout loaded strictly, and the losses of the released code.

The released layout (``tests/support/unite_released_layout.json``) lists every tensor of the official
``NoVGGCorrespondence`` and ``SEACEGenerator`` built with ``test_ade.sh``'s options. The official networks themselves
were compared outside the repository on the same weights and inputs (the generator with its four debugging lines,
which end in ``print(1/0)``, removed): at 256 px with the ADE20K options, the output, the five warped levels, the
warped mask and the confidence identical to the last bit in evaluation; at 64 px (the sizes the official code writes
for 256 px taken from the input) also in training with spectral norm's power iteration held, with the cycle warp and
the domain term, and parameter gradients within 4e-4 of the largest.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from midms.baselines.unite.correspondence import UniteCorrespondence, add_coordinates, mean_normalize
from midms.baselines.unite.generator import SEACE, PositionAttention, SEACEGenerator
from midms.baselines.unite.model import Unite
from midms.baselines.unite.released import load_released
from midms.baselines.unite.transport import epsilon_schedule, sinkhorn_potentials, transport_cost, transport_plan
from released_layouts import official_state
from scipy.special import logsumexp

from midms.data.contract import DataSpec
from midms.errors import UserError

BLUR = 0.025  # correspondence.py: self.p, self.blur = 1, 0.025
SCALING = 0.5  # geomloss SamplesLoss(scaling=.5), the default UNITE keeps
MASK_WEIGHT = 500.0  # pix2pix_model.py: G_losses['mask'] = F.l1_loss(...) * 500
CONFIDENCE_SCALE = 10.0  # correspondence.py: torch.sigmoid(conf_map * 10.0)
ADE_CHANNELS = 151  # data/ade20k_dataset.py: label_nc 150 + contain_dontcare_label


def _unit(b: int, n: int, d: int, seed: int) -> torch.Tensor:
    x = torch.randn(b, n, d, generator=torch.Generator().manual_seed(seed))
    return x / x.norm(dim=-1, keepdim=True)


def test_the_epsilon_schedule_puts_the_blur_second_then_halves_the_diameter_down_to_the_blur():
    x = torch.zeros(1, 2, 2)
    y = torch.tensor([[[0.6, 0.8], [0.0, 0.0]]])  # the bounding box of all points: [0, 0.6] × [0, 0.8], diagonal 1
    eps = epsilon_schedule(x, y)
    expected = [1.0, BLUR] + [SCALING**k for k in range(6)]  # 0.5**5 = 0.03125 > 0.025 > 0.5**6
    assert eps == pytest.approx(expected, rel=1e-6)


def test_the_cost_is_the_square_root_of_one_minus_the_dot_product_clipped_at_zero():
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], requires_grad=True)
    y = torch.tensor([[[1.0, 0.0], [-1.0, 0.0]]])
    cost = transport_cost(x, y * 1.0001)  # a dot product above 1: sqrt of a negative number -> 0
    values = cost.detach()
    assert values[0, 0, 0] == 0 and values[0, 0, 1].item() == pytest.approx(math.sqrt(2.0001), rel=1e-6)
    assert values[0, 1, 0].item() == pytest.approx(1.0)
    cost.sum().backward()
    assert torch.isfinite(x.grad).all()  # no infinite gradient where the cost is 0


def _plain_loop_potentials(a, x, b, y):
    """geomloss' ε-scaling loop for p = 1, balanced, not debiased, written out in float64 numpy: the ε list of
    :func:`epsilon_schedule`'s test, symmetric averaged updates, then one last update at the last ε."""
    cost = np.sqrt(np.clip(1 - x @ y.T, 0, None))
    points = np.concatenate([x, y])
    diameter = np.linalg.norm(points.max(0) - points.min(0))
    eps_list = [diameter, BLUR] + list(np.exp(np.arange(np.log(diameter), np.log(BLUR), np.log(SCALING))))

    def softmin(eps, c, h):  # -eps log sum_j exp(h_j - c_ij / eps), row by row
        return np.array([-eps * logsumexp(h - c[i] / eps) for i in range(c.shape[0])])

    la, lb = np.log(a), np.log(b)
    f, g = softmin(eps_list[0], cost, lb), softmin(eps_list[0], cost.T, la)
    for eps in eps_list:
        f, g = 0.5 * (f + softmin(eps, cost, lb + g / eps)), 0.5 * (g + softmin(eps, cost.T, la + f / eps))
    eps = eps_list[-1]
    return softmin(eps, cost, lb + g / eps), softmin(eps, cost.T, la + f / eps)


def test_the_potentials_are_geomloss_epsilon_scaling_loop_written_out():
    x, y = _unit(1, 24, 5, 0).double(), _unit(1, 24, 5, 1).double()
    a = torch.softmax(torch.randn(1, 24, generator=torch.Generator().manual_seed(2)), -1).double()
    b = torch.softmax(torch.randn(1, 24, generator=torch.Generator().manual_seed(3)), -1).double()
    f, g = sinkhorn_potentials(a, x, b, y)
    f_ref, g_ref = _plain_loop_potentials(a[0].numpy(), x[0].numpy(), b[0].numpy(), y[0].numpy())
    np.testing.assert_allclose(f[0].numpy(), f_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g[0].numpy(), g_ref, rtol=1e-9, atol=1e-12)
    # the loop stops at the last ε above the blur, not at the blur (which the released schedule puts second)
    assert epsilon_schedule(x, y)[-1] > BLUR


def test_the_plan_is_a_row_softmax_in_which_the_marginals_cancel():
    x, y = _unit(2, 16, 6, 4), _unit(2, 16, 6, 5)
    a = torch.softmax(torch.randn(2, 16), -1)
    b = torch.softmax(torch.randn(2, 16), -1)
    f, g = torch.randn(2, 16) * 0.01, torch.randn(2, 16) * 0.01
    raw, plan = transport_plan(f, g, a, b, x, y.transpose(1, 2).contiguous())
    expected = torch.softmax((g[:, None, :] - (1 - x @ y.transpose(1, 2))) / BLUR, dim=-1)
    torch.testing.assert_close(plan, expected, atol=1e-5, rtol=1e-4)
    # as released, both marginals scale rows (b is viewed along the input index): the columns are not weighted by b
    torch.testing.assert_close(raw / raw[:, :, :1], expected / expected[:, :, :1], atol=1e-3, rtol=1e-3)


def test_coordinates_and_mean_normalisation_are_the_released_formulas():
    out = add_coordinates(torch.zeros(1, 2, 3, 5))
    assert out.shape == (1, 5, 3, 5)
    assert out[0, 2, 0, 0] == -1 and out[0, 2, 0, 4] == 1 and out[0, 3, 0, 0] == -1 and out[0, 3, 2, 0] == 1
    assert out[0, 4, 2, 4] == pytest.approx(math.sqrt(2)) and out[0, 2, 1, 2] == 0 and out[0, 4, 1, 2] == 0
    x = torch.randn(2, 7, 9)
    centred = x - x.mean(1, keepdim=True)
    torch.testing.assert_close(mean_normalize(x), centred / centred.norm(dim=1, keepdim=True))


def _tiny_corr(**kw) -> UniteCorrespondence:
    torch.manual_seed(0)
    return UniteCorrespondence(3, ngf=4, match_channels=8, spade_hidden=8, **kw)


def _inputs(b: int = 2, c: int = 3, size: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, c, (b, size // 8, size // 8), generator=g).repeat_interleave(8, 1).repeat_interleave(8, 2)
    ref_labels = torch.randint(0, c, (b, size // 8, size // 8), generator=g).repeat_interleave(8, 1)
    ref_labels = ref_labels.repeat_interleave(8, 2)
    sem = F.one_hot(labels, c).permute(0, 3, 1, 2).float()
    ref_sem = F.one_hot(ref_labels, c).permute(0, 3, 1, 2).float()
    return sem, torch.rand(b, 3, size, size, generator=g) * 2 - 1, ref_sem


def test_the_confidence_is_a_sigmoid_of_the_centred_best_correlation_and_the_warps_use_one_plan():
    corr = _tiny_corr(use_coordconv=True, adaptor_nonlocal=True).eval()
    sem, exemplar, ref_sem = _inputs()
    with torch.no_grad():
        out = corr(sem, exemplar, ref_sem, cycle=True, warp_mask=True)
        cont = corr._trunk(out["seg_levels"][-1], sem)
        ref = corr._trunk(out["ref_levels"][-1], ref_sem)
    tc = mean_normalize(corr.theta_conf(cont).flatten(2))
    pc = mean_normalize(corr.phi_conf(ref).flatten(2))
    best = torch.einsum("bci,bcj->bij", tc, pc).max(-1).values
    expected = torch.sigmoid(CONFIDENCE_SCALE * (best - best.mean(1, keepdim=True))).view(2, 1, 8, 8)
    torch.testing.assert_close(out["confidence"], expected, atol=1e-5, rtol=1e-4)
    plan = out["plan"]
    torch.testing.assert_close(plan.sum(-1), torch.ones(2, 64))
    low = F.interpolate(exemplar, size=(8, 8), mode="nearest").flatten(2)  # nearest, not averaged
    torch.testing.assert_close(out["warp_low"].flatten(2), torch.einsum("bij,bcj->bci", plan, low))
    for level, warped in zip(out["ref_levels"][:4], out["warped_levels"], strict=True):
        source = F.interpolate(level, size=(8, 8), mode="nearest").flatten(2)
        torch.testing.assert_close(warped.flatten(2), torch.einsum("bij,bcj->bci", plan, source), atol=1e-5, rtol=1e-4)
    back = out["plan_raw"].transpose(1, 2)
    back = back / back.sum(-1, keepdim=True)  # normalised over the input index: the marginals matter here
    expected_cycle = torch.einsum("bij,bcj->bci", back, out["warp_low"].flatten(2))
    torch.testing.assert_close(out["warp_cycle"].flatten(2), expected_cycle, atol=1e-5, rtol=1e-4)
    assert [tuple(t.shape[1:]) for t in out["seg_levels"]] == [(8, 16, 16), (16, 16, 16), (32, 8, 8), (32, 8, 8),
                                                                (16, 8, 8)]  # fmt: skip


def test_seace_mixes_input_and_exemplar_by_the_confidence_and_aggregates_by_attention():
    torch.manual_seed(0)
    norm = SEACE(norm_nc=6, label_nc=3, feat_nc=4, grid=4, hidden=5, attention=True)
    with torch.no_grad():
        norm.coef.fill_(0.7)
    x, seg, ref = torch.randn(2, 6, 8, 8), torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4)
    attention = torch.softmax(torch.randn(2, 16, 16), -1)
    out = norm(x, seg, ref, attention, torch.zeros(2, 1, 4, 4))  # confidence 0: the input's features only
    mixed = norm.seg_shared(seg)
    pono = (x - x.mean(1, keepdim=True)) / (x.var(1, keepdim=True) + 1e-5).sqrt()
    torch.testing.assert_close(out, pono * (1 + norm.gamma(mixed)) + norm.beta(mixed))
    # confidence 1 above the grid: the exemplar feature aggregated at the grid's size, then resized to the block
    out = norm(x, seg, ref, attention, torch.ones(2, 1, 4, 4))
    feat = norm.ref_shared(ref).flatten(2)  # B×C×16
    aggregated = torch.einsum("bcj,bij->bci", feat, attention).view(2, 4, 4, 4)
    r = norm.coef * F.interpolate(aggregated, size=(8, 8)) + F.interpolate(ref, size=(8, 8))
    mixed = norm.ref_shared2(r)
    torch.testing.assert_close(out, pono * (1 + norm.gamma(mixed)) + norm.beta(mixed), atol=1e-5, rtol=1e-4)


def test_position_attention_is_a_softmax_of_query_key_products_over_positions():
    torch.manual_seed(0)
    att = PositionAttention(8)
    x = torch.randn(2, 8, 8, 8)
    out = att(x, size=4)
    small = F.interpolate(x, size=(4, 4))
    q, k = att.query_conv(small).flatten(2), att.key_conv(small).flatten(2)
    assert q.shape[1] == 2  # a quarter of the channels
    torch.testing.assert_close(out, torch.softmax(torch.einsum("bci,bcj->bij", q, k), -1))


@pytest.mark.slow  # a paper-size build (17 s); test_reproduce's slow released UNITE also loads strictly through run.py
def test_the_released_ade20k_layout_loads_strictly_and_a_misfit_is_named(tmp_path: Path):
    corr = UniteCorrespondence(ADE_CHANNELS, use_coordconv=True, adaptor_nonlocal=True)
    generator = SEACEGenerator(ADE_CHANNELS, 256)
    corr_state, g_state = official_state("unite", 0, network="Corr"), official_state("unite", 1)
    torch.save(corr_state, tmp_path / "latest_net_Corr.pth")
    torch.save(g_state, tmp_path / "latest_net_G.pth")
    hashes = load_released(corr, generator, tmp_path)
    assert set(hashes) == {"latest_net_Corr.pth", "latest_net_G.pth"}
    assert torch.equal(generator.G_out_0.norm_0.coef, g_state["G_out_0.norm_0.coef"])
    assert torch.equal(corr.trunk[2].act.weight, corr_state["layer.2.prelu.weight"])
    sn = corr.adaptive_model_seg.deeper2.conv_0.parametrizations.weight
    assert torch.equal(sn.original, corr_state["adaptive_model_seg.deeper2.conv_0.weight_orig"])
    del g_state["attn3.key_conv.weight"]
    g_state["fc.weight"] = g_state["fc.weight"][:, :10]
    torch.save(g_state, tmp_path / "latest_net_G.pth")
    with pytest.raises(UserError, match=r"attn3\.key_conv\.weight.*fc\.weight: file \(1024, 10, 3, 3\)"):
        load_released(corr, generator, tmp_path)
    without_coords = UniteCorrespondence(ADE_CHANNELS, use_coordconv=False, adaptor_nonlocal=True)
    with pytest.raises(UserError, match=r"layer\.0\.conv1\.weight \(here trunk\.0\.body\.1\.weight\): file"):
        load_released(without_coords, generator, tmp_path)  # the correspondence is read first


SPEC = DataSpec(semantic_nc=3, image_size=64, num_classes=3, has_target=False)


def _model(**settings) -> Unite:
    torch.manual_seed(0)
    base = {"reconstruction_target": "image", "warp_mask_losstype": "direct", "warp_cycle_w": 1.0}
    return Unite(SPEC, ngf=4, ndf=4, match_channels=8, spade_hidden=8, settings={**base, **settings},
                 vgg_weights="random", vgg_widths=[4, 4, 8, 8, 8])  # fmt: skip


def _batch():
    sem, exemplar, ref_sem = _inputs(2, 3, 64, seed=1)
    return {"semantics": sem, "exemplar": exemplar, "exemplar_semantics": ref_sem, "image": torch.rand(2, 3, 64, 64),
            "paired": torch.tensor([True, False]), "id": ["a", "b"], "exemplar_id": ["c", "d"]}  # fmt: skip


def test_the_mask_term_is_the_l1_to_the_one_hot_input_times_500_whatever_weight_mask_says():
    batch = _batch()
    terms = {}
    for weight in (100.0, 3.0):
        model = _model(weight_mask=weight)
        terms[weight], out = model.generator_losses(batch)
    target = F.interpolate(batch["semantics"], size=(16, 16), mode="nearest")
    expected = (F.l1_loss(out["warp_mask"], target) * MASK_WEIGHT).item()
    assert terms[100.0]["mask"].item() == pytest.approx(expected, rel=1e-5)
    assert terms[100.0]["mask"].item() == pytest.approx(terms[3.0]["mask"].item(), rel=1e-6)
    assert {"gan", "gan_feat", "fm", "perc", "contextual", "domain", "warp_cycle", "mask"} <= set(terms[3.0])


class _Recorder(torch.nn.Module):
    def __init__(self, seen: list):
        super().__init__()
        self.seen = seen

    def forward(self, x):
        self.seen.append(x)
        return {name: x for name in ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")}


def test_the_vgg_sees_the_image_as_given_without_vgg_normal_correct():
    seen = []
    for correct in (False, True):
        model = _model(vgg_normal_correct=correct)
        model.vgg = _Recorder(seen)
        model._vgg(torch.full((1, 3, 4, 4), -1.0))
    assert seen[0].min() == -1 and seen[1].max() == 0  # the ADE20K command: [-1, 1] as given; else (x + 1) / 2


def test_translation_and_the_warp_share_one_plan_and_warp_patch_is_refused():
    model = _model().eval()
    batch = _batch()
    fake, warped = model.translate_and_warp(batch, batch["exemplar_semantics"])
    assert fake.shape == (2, 3, 64, 64) and fake.abs().max() <= 1
    torch.testing.assert_close(warped, model.warp(batch))
    torch.testing.assert_close(warped.sum(1), torch.ones(2, 64, 64))  # one-hot labels stay a distribution
    with pytest.raises(UserError, match="warp_patch"):
        _model(warp_patch=True)


def test_a_training_step_moves_the_warp_towards_the_ground_truth():
    model = _model(warp_self_w=100.0, reconstruction_target="target")
    batch = _batch()
    batch["target"] = batch["exemplar"].flip(-1)
    batch["paired"] = torch.tensor([True, True])
    opt = torch.optim.Adam(model.corr.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        terms, _out = model.generator_losses(batch)
        opt.zero_grad()
        terms["warp_self"].backward()
        opt.step()
        losses.append(terms["warp_self"].item())
    assert losses[-1] < losses[0]


def test_the_dilated_shared_blocks_pad_by_their_dilation_as_the_adaptor_blocks():
    from midms.nn.blocks import SPADEResBlock, sn_conv_instance

    torch.manual_seed(0)
    block = SPADEResBlock(6, 4, 3, hidden=5, dilation=4).eval()  # Ada_SPADEResnetBlock(dilation=4): deeper2
    x, cond = torch.randn(1, 6, 12, 12), torch.randn(1, 3, 12, 12)
    with torch.no_grad():
        w0, w1 = block.conv_0.weight, block.conv_1.weight  # the spectrally normalised weights

        def conv(h, w, b):
            return F.conv2d(F.pad(h, (4, 4, 4, 4), mode="reflect"), w, b, dilation=4)

        dx = conv(F.leaky_relu(block.norm_0(x, cond), 0.2), w0, block.conv_0.bias)
        dx = conv(F.leaky_relu(block.norm_1(dx, cond), 0.2), w1, block.conv_1.bias)
        torch.testing.assert_close(block(x, cond), block.conv_s(block.norm_s(x, cond)) + dx)
        degrid = sn_conv_instance(4, 4, 3, padding=2, dilation=2).eval()  # degridding0: padding 2, dilation 2
        h = torch.randn(1, 4, 10, 10)
        expected = F.instance_norm(F.conv2d(h, degrid[0].weight, padding=2, dilation=2))
        torch.testing.assert_close(degrid(h), expected)


def test_the_parameters_a_generator_step_leaves_without_gradient_are_seaces_unused_attention_parts():
    """Why DDP needs find_unused_parameters (conf/model/unite.yaml): outside the attention blocks SEACE's
    ``ref_shared`` and ``coef`` are built (the released keys hold them) but never used."""
    model = _model()
    terms, _out = model.generator_losses(_batch())
    torch.stack(list(terms.values())).sum().backward()
    unused = {n for n, p in model.generator.named_parameters() if p.grad is None}
    attention_blocks = {"G_middle_0", "G_up_0", "G_out_0"}  # generator.py: atten=True
    expected = {
        n
        for n, _ in model.generator.named_parameters()
        if (".ref_shared.0." in n or n.endswith(".coef")) and n.split(".")[0] not in attention_blocks
    }
    assert unused == expected and expected
