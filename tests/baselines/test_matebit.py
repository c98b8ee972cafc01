"""MATEBIT (github.com/AiArt-Gao/MATEBIT): its blocks against their formulas, the memory's read-out and in-backward
update, the released CelebA-HQ layout loaded strictly, the losses and their weights, and its reader's pairing rule.

The released layout (``tests/support/matebit_released_layout.json``) lists every tensor of the official CelebA-HQ
``DynaSTGenerator`` (``generator_celebahqedge.py``). The official generator itself was compared outside the repository
on the same weights (written in its layout) and inputs: output identical to the last bit at 256 px with and without
the decoder's attention; in training mode (spectral norm's power iteration held) output, warps and the memory after
the backward pass identical, gradients within 4e-6.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from midms.baselines.matebit.model import MATEBIT, gram
from midms.baselines.matebit.network import (
    AdaptiveBlock,
    CoordinateAttention,
    FeatureMemory,
    MATEBITGenerator,
    adain,
)
from midms.baselines.matebit.released import load_released
from released_layouts import official_state

from midms.data.contract import DataSpec
from midms.errors import UserError

# generator_celebahqedge.py MemoryNetwork: alpha 0.999, tau 0.05, 1024 slots; loss.py StyleLoss layer weights;
# the README's CelebA-HQ command: --style_weight 0.1; pix2pix_model.py: weight_vgg 10, contextual x8 / x4 / x2
ALPHA, TAU, SLOTS = 0.999, 0.05, 1024
STYLE_WEIGHTS = (1.0, 1 / 2, 1 / 4, 1 / 8, 1 / 16)
STYLE, VGG, NOVGG_FEATPAIR, CONTEXTUAL = 0.1, 10.0, 10.0, 1.0


def test_coordinate_attention_and_the_adaptive_block_compute_their_formulas():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 6, 5)
    att = CoordinateAttention(16).eval()
    att.bn1.running_mean.uniform_(-0.2, 0.2)
    att.bn1.running_var.uniform_(0.5, 1.5)
    rows, cols = x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)
    y = F.batch_norm(att.conv1(torch.cat([rows, cols], 2)), att.bn1.running_mean, att.bn1.running_var,
                     att.bn1.weight, att.bn1.bias, eps=att.bn1.eps)  # fmt: skip
    y = y * torch.clamp(y + 3, 0, 6) / 6  # h-swish
    gate_h, gate_w = torch.sigmoid(att.conv_h(y[:, :, :6])), torch.sigmoid(att.conv_w(y[:, :, 6:]).transpose(2, 3))
    torch.testing.assert_close(att(x), x * gate_w * gate_h)
    assert att.conv1.out_channels == 8  # max(8, 16 // 32)
    block = AdaptiveBlock(16)
    block.gamma.data.uniform_(0.5, 1.0)
    z = block.coordatten(block.dwconv(x)).permute(0, 2, 3, 1)
    mlp = block.pwconv2(F.gelu(block.pwconv1(F.layer_norm(z, (16,), block.norm.weight, block.norm.bias, 1e-6))))
    torch.testing.assert_close(block(x), x + (block.gamma * mlp).permute(0, 3, 1, 2))


def test_adain_uses_the_instance_statistics_and_the_style_scale_and_shift():
    x = torch.randn(2, 3, 5, 4) * 3 + 1
    mean, scale = torch.randn(2, 3, 1, 1), torch.rand(2, 3, 1, 1) + 0.5
    mu, var = x.mean((2, 3), keepdim=True), x.var((2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(adain(x, mean, scale), (x - mu) / torch.sqrt(var + 1e-5) * scale + mean, rtol=1e-4,
                               atol=1e-4)  # fmt: skip


def test_the_memory_reads_out_a_softmax_over_slots_and_updates_itself_in_the_backward_pass():
    torch.manual_seed(1)
    memory = FeatureMemory(4, slots=6)
    assert memory.alpha.item() == pytest.approx(ALPHA) and memory.tau.item() == pytest.approx(TAU)
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    before = memory.latent_embedding.detach().clone()
    out = memory(x)
    unit = F.normalize(x.detach().reshape(2, 4, 9), dim=1)
    for b in range(2):
        for p in range(9):
            sim = before @ unit[b, :, p] / TAU
            expected = (torch.softmax(sim, 0)[:, None] * before).sum(0)
            torch.testing.assert_close(out[b, :, p // 3, p % 3], expected)
    out.sum().backward()
    expected = before.clone()
    for b in range(2):  # each sample in turn, every slot towards the position it matches best
        best = torch.argmax(before @ unit[b] / TAU, dim=1)
        expected = expected * ALPHA + (1 - ALPHA) * unit[b][:, best].T
    torch.testing.assert_close(memory.latent_embedding.detach(), expected)
    assert memory.latent_embedding.grad is None


def test_the_generator_matches_at_one_eighth_and_the_unused_released_parts_get_no_gradient():
    torch.manual_seed(0)
    gen = MATEBITGenerator(5, 32, ngf=4, n_layers=3, pos_dim=2, prune_dim=2, memory_slots=8)
    sem, ex, ex_sem = torch.rand(2, 5, 32, 32), torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 5, 32, 32)
    out = gen(sem, ex, ex_sem, warps=True)
    assert out["fake"].shape == (2, 3, 32, 32) and [w.shape[2:] for w in out["warps"]] == [(4, 4)] * 3
    (out["fake"].mean() + sum(w.mean() for w in out["warps"])).backward()
    without = {n for n, p in gen.named_parameters() if p.requires_grad and p.grad is None}
    assert without and all(".coord." in n or ".fast_path" in n for n in without)
    gen.attn.gamma.data.fill_(0.5)
    with torch.no_grad():
        assert not torch.equal(gen(sem, ex, ex_sem)["fake"], gen(sem, ex, ex_sem, attention=False)["fake"])


def test_the_released_celebahq_layout_loads_strictly_and_a_misfit_is_named(tmp_path: Path):
    state = official_state("matebit")
    assert state["memory.latent_embedding"].shape == (SLOTS, 512)
    torch.save(state, tmp_path / "latest_net_G.pth")
    gen = MATEBITGenerator(15, 256)
    digest = load_released(gen, tmp_path)
    assert len(digest["latest_net_G.pth"]) == 64
    ours = gen.state_dict()
    assert torch.equal(ours["memory.latent_embedding"], state["memory.latent_embedding"])
    assert torch.equal(ours["adain3.styleModulator.weight"], state["adain3.styleModulator.weight"])
    assert torch.equal(ours["layer5.0.0.parametrizations.weight.original"], state["layer5.0.0.weight_orig"])
    assert torch.equal(ours["transformer_4.2.adablock.coordatten.bn1.running_var"],
                       state["transformer_4.2.adablock.coordatten.bn1.running_var"])  # fmt: skip
    del state["mapping.network.2.bias"]
    torch.save(state, tmp_path / "latest_net_G.pth")
    with pytest.raises(UserError, match="mapping.network.2.bias"):
        load_released(MATEBITGenerator(15, 256), tmp_path)


def _model(**settings) -> MATEBIT:
    torch.manual_seed(0)
    spec = DataSpec(semantic_nc=5, image_size=64, num_classes=5, has_target=False)
    return MATEBIT(spec, ngf=4, ndf=4, pos_dim=2, prune_dim=2, memory_slots=8, vgg_weights="random",
                   vgg_widths=[4, 4, 8, 8, 8], settings={"style_weight": STYLE, **settings})  # fmt: skip


def test_the_generator_terms_add_contextual_style_and_feature_pair_terms_with_the_released_weights():
    from midms.nn.losses import contextual_loss

    model = _model()
    g = torch.Generator().manual_seed(3)
    batch = {
        "semantics": torch.rand(2, 5, 64, 64, generator=g),
        "exemplar": torch.rand(2, 3, 64, 64, generator=g) * 2 - 1,
        "exemplar_semantics": torch.rand(2, 5, 64, 64, generator=g),
        "image": torch.rand(2, 3, 64, 64, generator=g) * 2 - 1,
        "paired": torch.tensor([True, False]),
    }
    model.train()
    terms, out = model.generator_losses(batch)
    assert set(terms) == {"domain", "warp_self", "gan", "gan_feat", "fm", "perc", "contextual", "style"}
    fake_feats, ref_feats = model._vgg(out["fake"]), model._vgg(batch["exemplar"])
    layers = zip(STYLE_WEIGHTS, fake_feats, ref_feats, strict=True)
    expected_style = sum(w * (gram(f) - gram(r)).abs().mean() for w, f, r in layers)
    torch.testing.assert_close(terms["style"], expected_style * STYLE * VGG)
    f = fake_feats[2].shape[1] * fake_feats[2].shape[2] * fake_feats[2].shape[3]
    torch.testing.assert_close(gram(fake_feats[2])[0, 0, 0], (fake_feats[2][0, 0] ** 2).sum() / f)
    expected_ctx = 8 * contextual_loss(fake_feats[4], ref_feats[4]) + 4 * contextual_loss(fake_feats[3], ref_feats[3])
    expected_ctx += 2 * contextual_loss(F.avg_pool2d(fake_feats[2], 2), F.avg_pool2d(ref_feats[2], 2))
    torch.testing.assert_close(terms["contextual"], expected_ctx * VGG * CONTEXTUAL)
    real = model.generator.encoder_kv(torch.cat((batch["image"], batch["semantics"]), 1))
    domain = sum((s - r / (r.norm(dim=1, keepdim=True) + 1e-10)).abs().mean()
                 for s, r in zip(out["seg_features"], real, strict=True))  # fmt: skip
    torch.testing.assert_close(terms["domain"], domain * NOVGG_FEATPAIR)


def test_the_decoder_attention_is_trained_and_left_out_at_test_as_the_released_commands():
    model = _model()
    model.generator.attn.gamma.data.fill_(0.5)
    g = torch.Generator().manual_seed(4)
    batch = {k: torch.rand(1, c, 64, 64, generator=g) for k, c in
             (("semantics", 5), ("exemplar", 3), ("exemplar_semantics", 5))}  # fmt: skip
    model.eval()
    with torch.no_grad():
        test = model(batch)["fake"]
        without = model.generator(batch["semantics"], batch["exemplar"], batch["exemplar_semantics"], attention=False)
    assert torch.equal(test, without["fake"])
    assert model.settings["attention"] is True and model.settings["attention_at_test"] is False
    assert model.hparams["memory_slots"] == 8  # its own arguments, as checkpoints record them
    fake, warp = model.translate_and_warp(batch, batch["exemplar_semantics"])
    assert warp.shape == (1, 5, 64, 64) and torch.equal(fake, test.clamp(-1, 1))
