"""CoCosNet's networks: the released code's parameter counts at paper size, shapes, and the warp's limits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from midms.baselines.cocosnet.correspondence import CorrespondenceNet
from midms.baselines.cocosnet.generator import CoCosNetGenerator

from midms.nn import blocks
from midms.nn.correspondence import argmax_warp, soft_warp
from midms.nn.discriminator import MultiscaleDiscriminator

TINY = {"ngf": 4, "spade_hidden": 8}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: threads only add overhead on a shared CPU
    yield
    torch.set_num_threads(threads)


def test_paper_size_matches_the_released_celebahq_edge_model(monkeypatch):
    """CelebA-HQ edge-to-face (15-channel edges), as the README's celebahqedge command builds the networks."""
    # shapes only: spectral norm keeps a weight's shape (its power iterations are slow on the meta device)
    monkeypatch.setattr(blocks, "spectral_norm", lambda module: module)
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        corr = CorrespondenceNet(15, ngf=64, match_channels=256, spade_hidden=128, adaptor_kernel=4, maskmix=True)
    assert count(corr) == pytest.approx(53.4e6, rel=0.01)
    assert count(corr.adaptor_semantics) == pytest.approx(24.0e6, rel=0.01)
    assert count(corr.adaptor_image) == pytest.approx(23.9e6, rel=0.01)
    assert count(corr.trunk) == pytest.approx(5.3e6, rel=0.01)  # the four residual blocks (+0.14M in theta/phi)
    with torch.device("meta"):
        gen = CoCosNetGenerator(15, ngf=64, spade_hidden=128, use_attention=True)
    assert count(gen) == pytest.approx(92.6e6, rel=0.01)
    with torch.device("meta"):
        disc = MultiscaleDiscriminator(15 + 3, ndf=64, num_d=2, use_attention=True, padding=1)
    # the released code's 6.5M include an unused decoder per scale (3 spectral-instance convs and a 3×3 head)
    unused_decoder = 2 * ((256 * 128 + 128 * 64 + 64 * 32) * 9 + 32 * 15 * 9 + 15)
    assert count(disc) == pytest.approx(5.7e6, rel=0.01)
    assert count(disc) + unused_decoder == pytest.approx(6.5e6, rel=0.01)


@pytest.mark.parametrize("size", [64, 256])
def test_shapes_of_every_sub_network(size):
    s = 3  # semantic channels
    corr = CorrespondenceNet(s, match_channels=8, adaptor_kernel=4, warp_bilinear=True, **TINY)
    gen = CoCosNetGenerator(s, **TINY)
    disc = MultiscaleDiscriminator(s + 3, ndf=4, use_attention=True, padding=1)
    sem, ex = torch.rand(1, s, size, size), torch.rand(1, 3, size, size) * 2 - 1
    with torch.no_grad():
        assert corr.adaptor_semantics(sem).shape == (1, 16, size // 4, size // 4)
        out = corr(sem, ex, sem, image=ex, cycle=True, warp_mask=True)
        n = (size // 4) ** 2
        assert out["corr"].shape == (1, n, n)
        assert out["warp"].shape == (1, 3, size, size)
        assert out["warp_cycle"].shape == (1, 3, size // 4, size // 4)
        assert out["warp_mask"].shape == (1, s, size // 4, size // 4) and out["domain_loss"].dim() == 0
        fake = gen(out["warp"], sem)
        assert fake.shape == (1, 3, size, size) and fake.abs().max() <= 1
        pred = disc(torch.cat([sem, fake], 1))
        assert len(pred) == 2 and [len(p) for p in pred] == [5, 5]
        assert pred[0][-1].shape == (1, 1, size // 8 - 2, size // 8 - 2)
        assert pred[1][-1].shape == (1, 1, size // 16 - 2, size // 16 - 2)


def test_generator_rejects_images_below_64_px():
    with pytest.raises(ValueError, match="at least 64 px"):
        CoCosNetGenerator(1, **TINY)(torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 32, 32))


def test_correlation_is_a_cosine_in_minus_one_one():
    corr = CorrespondenceNet(3, match_channels=8, **TINY).eval()
    sem = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        c, _ = corr.correlate(sem, torch.rand(1, 3, 64, 64), sem)
    assert c.abs().max() <= 1 + 1e-5


def test_one_hot_correlation_warps_by_an_exact_permutation():
    values = torch.randn(2, 5, 4, 4)
    perm = torch.stack([torch.randperm(16), torch.randperm(16)])
    corr = F.one_hot(perm, 16).float()  # input position i matches exemplar position perm[b, i]
    warped = soft_warp(corr, values, temperature=0.01, out_hw=(4, 4))
    expected = torch.stack([values[b].flatten(1)[:, perm[b]] for b in range(2)]).view(2, 5, 4, 4)
    torch.testing.assert_close(warped, expected, atol=1e-6, rtol=0)


def test_soft_warp_tends_to_the_argmax_warp_as_temperature_goes_to_zero():
    g = torch.Generator().manual_seed(0)
    corr = torch.rand(1, 9, 9, generator=g) * 2 - 1
    values = torch.randn(1, 3, 3, 3, generator=g)
    hard = argmax_warp(corr, values)
    errors = [(soft_warp(corr, values, t) - hard).abs().max().item() for t in (1.0, 0.1, 0.01, 1e-4)]
    assert errors == sorted(errors, reverse=True) and errors[0] > 1e-2
    assert errors[-1] < 1e-5


def test_patch_warp_moves_each_exemplar_4x4_patch_by_the_correlation_softmax():
    """``--warp_patch`` (CoCosNet's DeepFashion commands): the warp at a query cell is the softmax-weighted sum of
    the exemplar's 4×4 pixel patches, checked against a plain loop over the cells; the cycle warp is the same
    operation with the softmax over the input positions."""
    torch.manual_seed(0)
    s, size = 3, 16
    corr_net = CorrespondenceNet(s, match_channels=8, warp_patch=True, **TINY).eval()
    sem, ex = torch.rand(1, s, size, size), torch.rand(1, 3, size, size) * 2 - 1
    with torch.no_grad():
        out = corr_net(sem, ex, sem, cycle=True)
    cells = size // 4
    patches = [ex[0, :, 4 * (k // cells) : 4 * (k // cells) + 4, 4 * (k % cells) : 4 * (k % cells) + 4]
               for k in range(cells * cells)]  # fmt: skip
    attn = torch.softmax(out["corr"][0].double() / corr_net.temperature, dim=-1)
    expected = torch.zeros(3, size, size, dtype=torch.float64)
    for q in range(cells * cells):
        patch = sum(attn[q, k] * patches[k].double() for k in range(cells * cells))
        expected[:, 4 * (q // cells) : 4 * (q // cells) + 4, 4 * (q % cells) : 4 * (q % cells) + 4] = patch
    assert out["warp"].shape == (1, 3, size, size)
    assert torch.allclose(out["warp"][0].double(), expected, atol=1e-5)
    back = torch.softmax(out["corr"][0].double().T / corr_net.temperature, dim=-1)
    warped = [expected[:, 4 * (k // cells) : 4 * (k // cells) + 4, 4 * (k % cells) : 4 * (k % cells) + 4]
              for k in range(cells * cells)]  # fmt: skip
    q = 5
    cycle = sum(back[q, k] * warped[k] for k in range(cells * cells))
    assert torch.allclose(out["warp_cycle"][0, :, 4:8, 4:8].double(), cycle, atol=1e-5)  # cell 5 = row 1, column 1
