"""SPADE's networks: the released code's parameter counts at paper size, the encoder, the shared blocks' modes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from midms.baselines.spade.encoder import StyleEncoder

from midms.nn import blocks
from midms.nn.blocks import SPADE
from midms.nn.discriminator import MultiscaleDiscriminator
from midms.nn.generator import SPADEGenerator

pytestmark = pytest.mark.usefixtures("one_thread")


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_size_matches_the_released_networks(monkeypatch):
    """Counted on the networks of NVlabs/SPADE ``models/networks/`` built with ``--ngf 64 --ndf 64 --crop_size 256
    --norm_G spectralspadesyncbatch3x3 --norm_D spectralinstance --num_D 2 --n_layers_D 4``: with ``--use_vae`` on a
    15-channel input (CelebA-HQ's edges) and, without it, with the ade20k options (150 labels + unknown)."""
    monkeypatch.setattr(blocks, "spectral_norm", lambda module: module)  # shapes only, fast on the meta device
    with torch.device("meta"):
        vae_generator = SPADEGenerator(15, 64, 128, norm="batch", padding="zeros", z_dim=256, image_size=256)
        encoder = StyleEncoder(64, 256, 256)
        discriminator = MultiscaleDiscriminator(15 + 3, ndf=64, num_d=2, n_layers=4)
        ade_generator = SPADEGenerator(151, 64, 128, norm="batch", padding="zeros")
        ade_discriminator = MultiscaleDiscriminator(151 + 3, ndf=64)
    assert count(vae_generator) == 109_122_499
    assert count(encoder) == 10_463_424
    assert count(discriminator) == 5_558_402
    assert count(ade_generator) == 96_492_483
    assert count(ade_discriminator) == 5_836_930


def test_the_encoder_reaches_a_4x4_grid_at_any_input_size():
    for size, layers in ((256, 6), (64, 4)):
        encoder = StyleEncoder(ndf=2, z_dim=5, input_size=size)
        assert len(encoder.convs) == layers and encoder.fc_mu.in_features == 2 * 8 * 4 * 4
        mu, logvar = encoder(torch.rand(3, 3, 48, 48) * 2 - 1)  # resized to input_size first
        assert mu.shape == logvar.shape == (3, 5)
    with pytest.raises(ValueError, match="4·2\\^k"):
        StyleEncoder(input_size=100)


def test_the_encoder_resizes_bilinearly_as_the_released_one():
    encoder = StyleEncoder(ndf=2, z_dim=3, input_size=16).eval()
    image = torch.rand(1, 3, 64, 64)
    resized = F.interpolate(image, size=(16, 16), mode="bilinear", align_corners=False)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(encoder(image), encoder(resized), strict=True))


def test_spade_layer_with_batch_norm_and_zero_padding_against_the_definition():
    """``BN(x) · (1 + γ(m)) + β(m)`` with zero-padded 3×3 convolutions (SPADE's ``spadesyncbatch3x3``)."""
    torch.manual_seed(0)
    layer = SPADE(4, 2, hidden=3, norm="batch", padding="zeros")
    x, m = torch.randn(2, 4, 8, 8), torch.rand(2, 2, 4, 4)
    out = layer(x, m)
    cond = F.interpolate(m, size=(8, 8), mode="nearest")
    hidden = F.relu(F.conv2d(cond, layer.shared[1].weight, layer.shared[1].bias, padding=1))
    gamma = F.conv2d(hidden, layer.gamma.weight, layer.gamma.bias, padding=1)
    beta = F.conv2d(hidden, layer.beta.weight, layer.beta.bias, padding=1)
    mean, var = x.mean(dim=(0, 2, 3), keepdim=True), x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * (1 + gamma) + beta
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    layer.eval()  # evaluation: the running statistics, not the batch's
    stats = (layer.norm.running_mean.view(1, -1, 1, 1), layer.norm.running_var.view(1, -1, 1, 1))
    expected = (x - stats[0]) / torch.sqrt(stats[1] + 1e-5) * (1 + gamma) + beta
    torch.testing.assert_close(layer(x, m), expected, rtol=1e-5, atol=1e-5)


def test_generator_with_a_style_code_shapes_and_errors():
    gen = SPADEGenerator(3, ngf=2, spade_hidden=4, norm="batch", padding="zeros", z_dim=6, image_size=64)
    sem, z = torch.rand(2, 3, 64, 64), torch.randn(2, 6)
    out = gen(sem, z)
    assert out.shape == (2, 3, 64, 64) and out.abs().max() <= 1
    with pytest.raises(ValueError, match="pass z"):
        gen(sem)
    with pytest.raises(ValueError, match="built for"):
        gen(torch.rand(2, 3, 128, 128), z)
    with pytest.raises(ValueError, match="image_size"):
        SPADEGenerator(3, z_dim=6)


def test_discriminator_padding_sets_the_patch_grid():
    """SPADE pads the 4×4 convolutions by 2 (``ceil(3/2)``), CoCosNet by 1: 64 px gives 11×11 and 6×6 patches."""
    x = torch.rand(1, 4, 64, 64)
    spade = MultiscaleDiscriminator(4, ndf=2)(x)
    cocosnet = MultiscaleDiscriminator(4, ndf=2, padding=1, use_attention=True)(x)
    assert spade[0][-1].shape[-2:] == (11, 11) and spade[1][-1].shape[-2:] == (7, 7)
    assert cocosnet[0][-1].shape[-2:] == (6, 6) and cocosnet[1][-1].shape[-2:] == (2, 2)


def test_positional_norm_against_a_plain_loop_over_positions():
    """PONO: each position's channel vector minus its mean, over the square root of its unbiased variance + eps
    (CoCosNet's ``PONO``), checked per position with NumPy in float64."""
    import numpy as np

    x = torch.randn(2, 7, 5, 3) * 3 + 1
    out = blocks.positional_norm(x, eps=1e-5).numpy()
    ref = np.empty_like(out)
    for b in range(2):
        for i in range(5):
            for j in range(3):
                v = x[b, :, i, j].double().numpy()
                ref[b, :, i, j] = (v - v.mean()) / np.sqrt(v.var(ddof=1) + 1e-5)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
