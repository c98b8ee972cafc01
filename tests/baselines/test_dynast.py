"""DynaST (github.com/Huage001/DynaST): the dynamic attention against plain loops, the generator's structure, the
released layout loaded strictly, and the losses, weights and schedule of the released DeepFashion command.

The released layout (``tests/support/dynast_released_layout.json``) lists every tensor name and shape of the official
``DynaSTGenerator`` built with ``test_deepfashion.sh``'s options. The official generator itself was compared outside
the repository on the same weights (written in its layout) and inputs: output and warps bit-identical at 256 px.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from midms.baselines.dynast.attention import (
    SignWithSigmoidGrad,
    dense_attention,
    inner_scale_attention,
    inter_scale_attention,
)
from midms.baselines.dynast.model import DynaST
from midms.baselines.dynast.network import DynaSTGenerator
from midms.baselines.dynast.released import load_released, official_generator_name
from released_layouts import official_state

from midms.data.contract import DataSpec
from midms.errors import UserError

# DynaST's options: generator.py (--top_k 4, --smooth 0.01), train_deepfashion.sh (--weight_warp_self 1000
# --which_perceptual 4_2 --weight_perceptual 0.001 --lr 0.0001 --niter 80 --niter_decay 20 --batchSize 40 on 8 GPUs),
# pix2pix_model.py's defaults (--weight_gan 10, --weight_ganFeat 10, --weight_vgg 10, --weight_fm_ratio 1) and its
# masked_fill value -1e4
TOP_K, SMOOTH, KEPT_FILL = 4, 0.01, -1e4
WARP_SELF, GAN, GAN_FEAT, VGG, FM_RATIO, PERC = 1000.0, 10.0, 10.0, 10.0, 1.0, 0.001
LR, NITER, NITER_DECAY, PER_GPU_BATCH = 1e-4, 80, 20, 5
FM_LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
# float32 against the float64 loop: a correlation over 0.01 reaches a few hundred, so ~1e-5 relative
TOL = {"rtol": 1e-4, "atol": 1e-5}


def _softmax(xs: list[float]) -> list[float]:
    top = max(xs)
    e = [math.exp(x - top) for x in xs]
    return [v / sum(e) for v in e]


def _attend_loop(q, keys, pq, pkeys, values, warp_values, divide_prune, smooth):
    """One query against its candidates, written out: (output, confidence, warp, attention)."""
    cor = [sum(qc * kc for qc, kc in zip(q, k, strict=True)) / smooth for k in keys]
    attn = _softmax(cor)
    scores = [sum(a * b for a, b in zip(pq, pk, strict=True)) / divide_prune for pk in pkeys]
    mask = [1.0 if s > 0 else 0.0 for s in scores]
    out = [sum(a * m * v[c] for a, m, v in zip(attn, mask, values, strict=True)) for c in range(len(values[0]))]
    conf = sum(a * m for a, m in zip(attn, mask, strict=True))
    warp_attn = _softmax([KEPT_FILL if m else c for c, m in zip(cor, mask, strict=True)])
    warp = [sum(a * v[c] for a, v in zip(warp_attn, warp_values, strict=True)) for c in range(len(warp_values[0]))]
    return out, conf, warp, attn


def _vec(x: torch.Tensor, b: int, y: int, xx: int) -> list[float]:
    return x[b, :, y, xx].double().tolist()


def _check_query(inputs, results, b, y, x, cands, divide_prune, smooth) -> list[float]:
    """The outputs at query (b, y, x) equal the loop's over its candidate positions; returns the loop's attention."""
    q, k, qp, kp, v, v2 = inputs
    out, conf, warp = results
    o, c, w, attn = _attend_loop(
        _vec(q, b, y, x),
        [_vec(k, b, *p) for p in cands],
        _vec(qp, b, y, x),
        [_vec(kp, b, *p) for p in cands],
        [_vec(v, b, *p) for p in cands],
        [_vec(v2, b, *p) for p in cands],
        divide_prune=divide_prune,
        smooth=smooth,
    )
    for got, expected in ((out[b, :, y, x], o), (conf[b, 0, y, x], c), (warp[b, :, y, x], w)):
        torch.testing.assert_close(got.double(), torch.tensor(expected, dtype=torch.float64), **TOL)
    return attn


def _inputs(seed: int, hq: int, hk: int, c: int = 6, cp: int = 3, cv: int = 5):
    g = torch.Generator().manual_seed(seed)
    make = lambda ch, h: torch.randn(2, ch, h, h, generator=g)  # noqa: E731
    return make(c, hq), make(c, hk), make(cp, hq), make(cp, hk), make(cv, hk), make(2, hk)


def test_the_pruning_mask_is_a_step_with_the_sigmoids_gradient():
    x = torch.tensor([-2.0, -0.1, 0.0, 0.3, 4.0], requires_grad=True)
    y = SignWithSigmoidGrad.apply(x)
    assert y.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    y.sum().backward()
    s = torch.sigmoid(x.detach())
    torch.testing.assert_close(x.grad, s * (1 - s))


def test_dense_attention_is_the_plain_loop():
    inputs = q, k, qp, kp, v, v2 = _inputs(0, 4, 4)
    out, cor, conf, warp = dense_attention(q, k, qp, kp, v, None, v2)
    smooth = math.sqrt(q.shape[1])  # the dense level divides by sqrt(width)
    keys = [(y, x) for y in range(4) for x in range(4)]
    for b in range(2):
        for y in range(4):
            for x in range(4):
                _check_query(inputs, (out, conf, warp), b, y, x, keys, kp.shape[1], smooth)
    assert cor.shape == (2, 16, 16)


def _children(parent: int, coarse_w: int) -> list[tuple[int, int]]:
    py, px = divmod(parent, coarse_w)
    return [(2 * py + dy, 2 * px + dx) for dy in (0, 1) for dx in (0, 1)]


def _assert_top_k(top: list[int], cands: list[tuple[int, int]], attn: list[float], width: int) -> None:
    """The returned indices are candidates whose attention is the k largest (ties: any of the tied candidates)."""
    by_position = {y * width + x: a for (y, x), a in zip(cands, attn, strict=True)}
    assert set(top) <= set(by_position)
    expected = sorted(sorted(attn, reverse=True)[:TOP_K])
    assert sorted(by_position[i] for i in top) == pytest.approx(expected, abs=1e-6)


def test_inter_scale_attention_looks_at_the_children_of_the_parents_matches():
    inputs = q, k, qp, kp, v, v2 = _inputs(1, 8, 8)
    g = torch.Generator().manual_seed(2)
    # a 4×4 coarse level: each 2×2 query window's parent has TOP_K distinct matches among its 16 positions
    parents = torch.stack([torch.stack([torch.randperm(16, generator=g)[:TOP_K] for _ in range(16)]) for _ in range(2)])
    out, top, conf, warp = inter_scale_attention(q, k, qp, kp, v, parents, SMOOTH, v2)
    for b in range(2):
        for y in range(8):
            for x in range(8):
                window = (y // 2) * 4 + x // 2
                cands = [p for parent in parents[b, window].tolist() for p in _children(parent, 4)]
                attn = _check_query(inputs, (out, conf, warp), b, y, x, cands, 1.0, SMOOTH)
                _assert_top_k(top[b, y * 8 + x].tolist(), cands, attn, 8)


def test_inner_scale_attention_adds_the_neighbours_matches_moved_one_step_back():
    inputs = q, k, qp, kp, v, v2 = _inputs(3, 4, 4)
    g = torch.Generator().manual_seed(4)
    matches = torch.randint(0, 16, (2, 16, TOP_K), generator=g)
    out, top, conf, warp = inner_scale_attention(q, k, qp, kp, v, matches, SMOOTH, v2)
    h = w_ = 4

    def moved(index: int, dy: int, dx: int) -> tuple[int, int]:
        my, mx = divmod(index, w_)
        return min(max(my + dy, 0), h - 1), min(max(mx + dx, 0), w_ - 1)

    for b in range(2):
        for y in range(h):
            for x in range(w_):
                own = [divmod(i, w_) for i in matches[b, y * w_ + x].tolist()]
                cands = list(own)
                # the upper neighbour's matches one row down, the lower's one row up, the left's one column right,
                # the right's one column left; at the border the position itself stands in for the neighbour
                for (ny, nx), (dy, dx) in (((y - 1, x), (1, 0)), ((y + 1, x), (-1, 0)), ((y, x - 1), (0, 1)),
                                           ((y, x + 1), (0, -1))):  # fmt: skip
                    ny, nx = min(max(ny, 0), h - 1), min(max(nx, 0), w_ - 1)
                    cands += [moved(i, dy, dx) for i in matches[b, ny * w_ + nx].tolist()]
                attn = _check_query(inputs, (out, conf, warp), b, y, x, cands, 1.0, SMOOTH)
                _assert_top_k(top[b, y * w_ + x].tolist(), cands, attn, w_)


def test_the_shared_blocks_compute_dynasts_definitions():
    # architecture.py: PositionalNorm2d (eps 1e-8, unbiased variance), SPADE with hidden = dim and reflect-padded
    # 3x3 convs, ResidualBlock = PReLU(x + BN(conv(PReLU(BN(conv(x)))))) with one PReLU and affine BatchNorm
    from midms.baselines.dynast.network import dynast_spade

    from midms.nn.blocks import ResidualBlock

    torch.manual_seed(1)
    x, cond = torch.randn(2, 6, 8, 8), torch.rand(2, 3, 4, 4)
    small = x * 0.003  # variances near 1e-5, where CoCosNet's eps (1e-5) and DynaST's (1e-8) differ
    spade = dynast_spade(6, 3)

    def conv(t, layer):
        return F.conv2d(F.pad(t, [1, 1, 1, 1], mode="reflect"), layer.weight, layer.bias)

    mean, var = small.mean(1, keepdim=True), small.var(1, keepdim=True)
    hidden = F.relu(conv(F.interpolate(cond, size=(8, 8)), spade.shared[1]))
    expected = (1 + conv(hidden, spade.gamma)) * ((small - mean) / (var + 1e-8).sqrt()) + conv(hidden, spade.beta)
    assert spade.shared[1].out_channels == 6  # hidden width = the block's width
    torch.testing.assert_close(spade(small, cond), expected)
    block = ResidualBlock(6, norm="batch").eval()
    for bn in (block.body[2], block.body[6]):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)

    def bn(t, layer):
        scale = layer.weight / (layer.running_var + layer.eps).sqrt()
        return (t - layer.running_mean.view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1) + layer.bias.view(1, -1, 1, 1)

    slope = block.act.weight
    inner = F.prelu(bn(conv(x, block.body[1]), block.body[2]), slope)
    expected = F.prelu(x + bn(conv(inner, block.body[5]), block.body[6]), slope)
    torch.testing.assert_close(block(x), expected)
    assert block.body[3] is block.act  # one PReLU for both activations


def _tiny_generator(size: int = 32, n_layers: int = 2) -> DynaSTGenerator:
    torch.manual_seed(0)
    return DynaSTGenerator(5, size, ngf=4, n_layers=n_layers, pos_dim=2, prune_dim=2)


def test_the_generator_warps_each_level_and_embed_1_is_unused_as_released():
    gen = _tiny_generator()
    sem, ex, ex_sem = torch.rand(2, 5, 32, 32), torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 5, 32, 32)
    out = gen(sem, ex, ex_sem, warps=True)
    assert out["fake"].shape == (2, 3, 32, 32) and out["fake"].abs().max() <= 1
    assert [tuple(w.shape[2:]) for w in out["warps"]] == [(4, 4)] * 2 + [(8, 8)] * 2 + [(16, 16)] * 2 + [(32, 32)] * 2
    assert gen.pos_embed.shape[2:] == (4, 4)  # the image at 1/8
    (out["fake"].mean() + sum(w.mean() for w in out["warps"])).backward()
    without = {n.split(".")[0] for n, p in gen.named_parameters() if p.grad is None}
    assert without == {"embed_1"}  # generator.py: the finest fusion calls embed_q1
    assert gen(sem, ex, ex_sem)["warps"] == []


def test_the_warp_source_enters_the_warps_only():
    gen = _tiny_generator().eval()
    sem, ex, ex_sem = torch.rand(1, 5, 32, 32), torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 5, 32, 32)
    one_hot = F.one_hot(torch.randint(0, 4, (1, 32, 32)), 4).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        plain = gen(sem, ex, ex_sem, warps=True)
        labelled = gen(sem, ex, ex_sem, warps=True, warp_source=one_hot)
    assert torch.equal(plain["fake"], labelled["fake"])
    torch.testing.assert_close(labelled["warps"][-1].sum(1), torch.ones(1, 32, 32))  # a convex combination
    assert not torch.equal(plain["warps"][-1][:, :3], labelled["warps"][-1][:, :3])


def test_the_released_layout_loads_strictly_at_paper_size(tmp_path: Path):
    state = official_state("dynast")
    torch.save(state, tmp_path / "latest_net_G.pth")
    gen = DynaSTGenerator(20, 256)  # the released options: ngf 64, max_multi 8, n_layers 2, pos/prune 16
    digest = load_released(gen, tmp_path)
    assert list(digest) == ["latest_net_G.pth"] and len(digest["latest_net_G.pth"]) == 64
    ours = gen.state_dict()
    assert torch.equal(ours["pos_embed"], state["pos_embed"])
    assert torch.equal(
        ours["transformer_3.1.res_block.body.2.running_var"], state["transformer_3.1.res_block.model.1.running_var"]
    )
    assert torch.equal(ours["embed_q2.norm_1.shared.1.weight"], state["embed_q2.norm_1.mlp_shared.0.weight"])
    assert torch.equal(
        ours["encoder_kv.layer3.0.parametrizations.weight.original"], state["encoder_kv.layer3.0.weight_orig"]
    )
    assert sum(t.numel() for n, t in ours.items() if "num_batches" not in n) > 90e6  # 92.5M, as the release


def test_a_misfit_released_file_is_named_in_both_layouts(tmp_path: Path):
    state = official_state("dynast")
    del state["transformer_2.0.g_prune.weight"]
    state["decoder_21.1.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "latest_net_G.pth")
    with pytest.raises(UserError) as err:
        load_released(DynaSTGenerator(20, 256), tmp_path)
    message = str(err.value)
    assert "transformer_2.0.g_prune.weight" in message and "decoder_21.1.weight" in message
    assert (
        official_generator_name("encoder_q.layer1.2.body.6.running_mean") == "encoder_q.layer1.2.model.4.running_mean"
    )
    assert official_generator_name("embed_kv3.act.weight") == "embed_kv3.relu.weight"
    with pytest.raises(UserError, match="latest_net_G.pth"):
        load_released(DynaSTGenerator(20, 256), tmp_path / "absent")


SIDE = 64  # the model's tests: the discriminator's second scale needs more than 32 pixels


def _model(**settings) -> DynaST:
    torch.manual_seed(0)
    spec = DataSpec(semantic_nc=5, image_size=SIDE, num_classes=5, has_target=False)
    return DynaST(spec, ngf=4, ndf=4, pos_dim=2, prune_dim=2, vgg_weights="random", vgg_widths=[4, 4, 8, 8, 8],
                  settings=settings)  # fmt: skip


def _batch(paired: list[bool]) -> dict:
    g = torch.Generator().manual_seed(5)
    n = len(paired)
    return {
        "semantics": torch.rand(n, 5, SIDE, SIDE, generator=g),
        "exemplar": torch.rand(n, 3, SIDE, SIDE, generator=g) * 2 - 1,
        "exemplar_semantics": torch.rand(n, 5, SIDE, SIDE, generator=g),
        "image": torch.rand(n, 3, SIDE, SIDE, generator=g) * 2 - 1,
        "paired": torch.tensor(paired),
    }


def test_the_generator_terms_are_the_released_ones_with_their_weights():
    model = _model()
    batch = _batch([True, False, True])
    terms, out = model.generator_losses(batch)
    assert set(terms) == {"warp_self", "gan", "gan_feat", "fm", "perc"}  # no contextual loss
    weights = torch.tensor([1.0, 0.0, 1.0]) / (2 + 1e-5) * (3 / PER_GPU_BATCH)
    expected = 0.0
    for warp in out["warps"]:
        s = SIDE // warp.shape[-1]
        gt = F.avg_pool2d(batch["image"], s, stride=s) if s > 1 else batch["image"]
        expected += ((warp - gt).abs() * weights.view(-1, 1, 1, 1)).mean() * WARP_SELF
    torch.testing.assert_close(terms["warp_self"], expected)
    fake_feats, real_feats = model._vgg(out["fake"]), model._vgg(batch["image"])
    fm = sum(
        lw * ((f - r).abs() * weights.view(-1, 1, 1, 1)).mean()
        for lw, f, r in zip(FM_LAYER_WEIGHTS, fake_feats, real_feats, strict=True)
    )
    torch.testing.assert_close(terms["fm"], fm * VGG * FM_RATIO)
    torch.testing.assert_close(terms["perc"], F.mse_loss(fake_feats[3], real_feats[3]) * PERC)  # relu4_2
    pred_fake, _ = model.discriminate(batch["semantics"], out["fake"], batch["image"])
    torch.testing.assert_close(terms["gan"], -torch.stack([p[-1].mean() for p in pred_fake]).mean() * GAN)
    unpaired, _ = model.generator_losses(_batch([False, False, False]))
    assert unpaired["warp_self"] == 0 and unpaired["fm"] == 0
    assert model.settings["weight_gan_feat"] == GAN_FEAT


@pytest.mark.filterwarnings(r"ignore:Detected call of `lr_scheduler.step\(\)`")
def test_the_rates_are_two_timescale_in_the_first_epoch_only_then_one_decaying_rate():
    # trainers/pix2pix_trainer.py: update_learning_rate sets G and D to old_lr at every epoch's end
    model = _model(niter=NITER, niter_decay=NITER_DECAY)
    model.lr = LR
    (opt_g, opt_d), (sched_g, sched_d) = model.configure_optimizers()
    assert opt_g.defaults["betas"] == (0.0, 0.9) and opt_g.defaults["eps"] == 1e-3
    assert opt_d.defaults["betas"] == (0.0, 0.9)
    rates = []
    for _epoch in range(NITER + NITER_DECAY):
        rates.append((opt_g.param_groups[0]["lr"], opt_d.param_groups[0]["lr"]))
        sched_g.step()
        sched_d.step()
    assert rates[0] == pytest.approx((LR / 2, LR * 2))
    assert rates[1] == rates[NITER] == pytest.approx((LR, LR))
    assert rates[NITER + 1] == pytest.approx((LR * (1 - 1 / NITER_DECAY),) * 2)
    assert rates[-1] == pytest.approx((LR / NITER_DECAY,) * 2)
    ttur = _model(ttur_first_epoch_only=False)
    (g2, d2), _ = ttur.configure_optimizers()
    assert (g2.param_groups[0]["lr"], d2.param_groups[0]["lr"]) == pytest.approx((ttur.lr / 2, ttur.lr * 2))


def test_the_warp_loss_reaches_every_attention_block_and_a_step_down_its_gradient_lowers_it():
    model = _model()
    batch = _batch([True, True, True, True])
    batch["exemplar"], batch["exemplar_semantics"] = batch["image"], batch["semantics"]  # self-reference pairs
    before = model.generator_losses(batch)[0]["warp_self"]
    before.backward()
    blocks = [n.removesuffix(".f.weight") for n, _ in model.generator.named_parameters() if n.endswith(".f.weight")]
    assert len(blocks) == 8
    for block in blocks:  # the warp trains the queries' and keys' projections of every level (not their values)
        for part in ("f", "g"):
            assert model.generator.get_parameter(f"{block}.{part}.weight").grad.abs().sum() > 0
    with torch.no_grad():
        for p in model.generator.parameters():
            if p.grad is not None:
                p -= 1e-2 * p.grad
    after = model.generator_losses(batch)[0]["warp_self"]
    assert after < before - 0.1


def test_translation_and_warp_come_from_one_pass_and_the_image_size_is_checked():
    model = _model().eval()
    batch = _batch([False, False])
    labels = F.one_hot(torch.randint(0, 5, (2, SIDE, SIDE)), 5).permute(0, 3, 1, 2).float()
    fake, warp = model.translate_and_warp(batch, labels)
    assert torch.equal(fake, model.translate(batch))
    assert torch.equal(warp, model.warp(batch, labels))
    torch.testing.assert_close(warp.sum(1), torch.ones(2, SIDE, SIDE))
    with pytest.raises(UserError, match="multiple of 16"):
        DynaST(DataSpec(semantic_nc=5, image_size=40, num_classes=5, has_target=False), vgg_weights=None)
