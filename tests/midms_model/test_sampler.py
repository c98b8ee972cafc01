"""The interleaved sampler: timesteps visited, UNet calls and re-matchings, and the DDIM update itself."""

from __future__ import annotations

import pytest
import torch

from midms.models.midms.prior import make_scheduler
from midms.models.midms.sampler import InterleaveSchedule, ddim_step, ddim_update, official_grid, reinject


def test_official_timesteps():
    s = InterleaveSchedule()
    assert official_grid(16)[:2] == [993, 931] and len(official_grid(16)) == 17
    assert s.noise_timestep == 311
    assert s.unet_timesteps == [249, 187, 125, 63]
    assert s.refine_noise_timestep == 101
    assert s.refine_timesteps == list(range(96, 0, -5)) and len(s.refine_timesteps) == 20
    # ablations: the grid size sets ddim_steps // 4 steps; interleave_steps keeps the start (t = 311)
    assert InterleaveSchedule(ddim_steps=8).unet_timesteps == [126, 1]
    assert InterleaveSchedule(ddim_steps=32).unet_timesteps == [249, 218, 187, 156, 125, 94, 63, 32]
    assert InterleaveSchedule(interleave_steps=2).unet_timesteps == [249, 187]
    with pytest.raises(ValueError):
        _ = InterleaveSchedule(ddim_steps=8, interleave_steps=4).positions


def test_ddim_step_equals_closed_form():
    sched = make_scheduler()
    sched.set_timesteps(16)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    ac = sched.alphas_cumprod.double()
    # the LDM schedule (CompVis make_beta_schedule "linear" + register_schedule): betas linear in sqrt space from
    # 0.0015 to 0.0195, their cumulative product in float64, stored as float32
    betas = torch.linspace(0.0015**0.5, 0.0195**0.5, 1000, dtype=torch.float64) ** 2
    cumprod64 = torch.cumprod(1 - betas, 0)
    assert torch.equal(sched.alphas_cumprod, cumprod64.float())
    assert torch.equal(sched.sqrt_one_minus_alphas_cumprod, (1 - cumprod64).sqrt().float())
    for t, t_prev in ((249, 187), (63, 1)):
        x_t = ac[t].sqrt() * x0 + (1 - ac[t]).sqrt() * eps
        x_prev, x0_pred = ddim_step(sched, eps, t, x_t.float())
        expected = ac[t_prev].sqrt() * x0 + (1 - ac[t_prev]).sqrt() * eps
        assert torch.allclose(x0_pred, x0, atol=1e-4) and torch.allclose(x_prev, expected.float(), atol=1e-4)
    # re-injection: the state after replacing x0 is the DDIM state of the new x0 with the same direction
    x_t = (ac[249].sqrt() * x0 + (1 - ac[249]).sqrt() * eps).float()
    update = ddim_update(sched, eps, 249, x_t)
    x0_new = torch.randn(2, 3, 4, 4, generator=g)
    expected = ac[187].sqrt() * x0_new + (1 - ac[187]).sqrt() * eps
    assert torch.allclose(reinject(update, x0_new), expected.float(), atol=1e-4)
    # the official ddim_param: rebuilding the state around its own x0 gives the state back, bit for bit
    assert torch.equal(reinject(update, update.pred_original_sample), update.prev_sample)


def test_final_refinement_step_uses_alpha_zero_and_eta_one():
    sched = make_scheduler()
    sched.set_timesteps(200)
    ac = sched.alphas_cumprod.double()
    g = torch.Generator().manual_seed(3)
    x0, eps = torch.randn(1, 3, 4, 4, generator=g), torch.randn(1, 3, 4, 4, generator=g)
    t, t_prev = 96, 91
    x_t = (ac[t].sqrt() * x0 + (1 - ac[t]).sqrt() * eps).float()
    x_prev, _ = ddim_step(sched, eps, t, x_t, eta=1.0, generator=torch.Generator().manual_seed(5))
    sigma = ((1 - ac[t_prev]) / (1 - ac[t]) * (1 - ac[t] / ac[t_prev])).sqrt()
    noise = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(5)).double()
    expected = ac[t_prev].sqrt() * x0 + (1 - ac[t_prev] - sigma**2).sqrt() * eps + sigma * noise
    assert torch.allclose(x_prev.double(), expected, atol=1e-4)
    assert sched.sigma(t, 1.0).item() == pytest.approx(sigma.item(), rel=1e-6)
    # the last step of the grid (t = 1) steps to alphas_cumprod[0] (CompVis: ddim_alphas_prev[0] = alphacums[0])
    assert sched.alpha_prev(1) == sched.alphas_cumprod[0] and sched.prev_timestep(96) == 91


class Recorder:
    """Counts UNet calls (with their timesteps) and re-matchings of a model."""

    def __init__(self, model):
        self.unet_t: list[int] = []
        self.rematches = 0
        self.blends: list[bool] = []
        eps, rematch = model.prior.eps, model.rematch

        def counting_eps(x, t):
            self.unet_t.append(int(t))
            return eps(x, t)

        def counting_rematch(*args):
            self.rematches += 1
            return rematch(*args)

        model.prior.eps, model.rematch = counting_eps, counting_rematch


@pytest.mark.parametrize(
    ("overrides", "unet_calls", "rematches"),
    [
        ([], 24, 2),
        (["ablation=no_confidence"], 24, 2),
        (["ablation=no_interleave"], 24, 0),
        (["ablation=no_refine"], 4, 2),
        (["ablation=interleave_steps_1"], 21, 0),
        (["ablation=interleave_steps_2"], 22, 1),
        (["ablation=ddim_steps_8"], 22, 1),
        (["ablation=ddim_steps_32"], 28, 2),
    ],
)
def test_sampler_paths(build_model, batch_of, overrides, unet_calls, rematches):
    model, ds = build_model(*overrides)
    rec = Recorder(model)
    out = model.translate(batch_of(ds, [0, 1]))
    assert out.shape == (2, 3, 32, 32) and out.abs().max() <= 1
    assert len(rec.unet_t) == unet_calls and rec.rematches == rematches
    if overrides == []:
        assert rec.unet_t == [249, 187, 125, 63, *range(96, 0, -5)]


def test_confidence_mask_decides_which_positions_are_rewarped(build_model, batch_of, monkeypatch):
    """With confidence, non-confident positions keep the old prediction; without it, all take the new one."""
    import midms.models.midms.sampler as sampler_mod

    seen = []
    real_blend = sampler_mod.blend

    def spy(new, old, mask):
        out = real_blend(new, old, mask)
        seen.append((new, old, mask, out))
        return out

    monkeypatch.setattr(sampler_mod, "blend", spy)
    for overrides, expect_mask in (([], True), (["ablation=no_confidence"], False)):
        seen.clear()
        model, ds = build_model("ablation=no_refine", *overrides)
        model.translate(batch_of(ds, [0]))
        assert len(seen) == 2
        for new, old, mask, out in seen:
            assert (mask is not None) == expect_mask
            if mask is None:
                assert torch.equal(out, new)
            else:
                assert torch.equal(out, torch.where(mask.bool(), new, old))


def test_kl_autoencoder_prior_runs_the_same_sampler(build_model, batch_of):
    """The LSUN-Churches setup: a KL autoencoder with 4-channel latents and a latent scale factor."""
    model, ds = build_model(
        "model.sizes.tiny.prior.kind=kl",
        "model.sizes.tiny.prior.scale_factor=0.22765929",
        "+model.sizes.tiny.prior.vae.down_block_types=[DownEncoderBlock2D,DownEncoderBlock2D,DownEncoderBlock2D]",
        "+model.sizes.tiny.prior.vae.up_block_types=[UpDecoderBlock2D,UpDecoderBlock2D,UpDecoderBlock2D]",
        "+model.sizes.tiny.prior.vae.layers_per_block=1",
        "+model.sizes.tiny.prior.vae.norm_num_groups=4",
        "model.sizes.tiny.prior.vae.block_out_channels=[8,16,16]",
        "model.sizes.tiny.prior.vae.latent_channels=4",
        "model.sizes.tiny.prior.unet.in_channels=4",
        "model.sizes.tiny.prior.unet.out_channels=4",
        "ablation=no_refine",
    )
    assert model.prior.kind == "kl" and model.prior.latent_channels == 4
    batch = batch_of(ds, [0, 1])
    z = model.prior.encode(batch["exemplar"], sample=False)
    assert z.shape == (2, 4, 8, 8)
    assert model.translate(batch).shape == (2, 3, 32, 32)


def test_translate_under_autocast_and_channels_last_matches_fp32(build_model, batch_of):
    """The GPU-speed variants of ``benchmarks/perf_midms.py``: bf16 autocast mixes dtypes in the re-matching
    blend and the DDIM state, channels-last changes every convolution's layout; both stay close to fp32."""
    model, ds = build_model()
    batch = batch_of(ds, [0, 1])
    ref = model.translate(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model.translate(batch)
    cl_model = model.to(memory_format=torch.channels_last)
    as_cl = {
        k: v.contiguous(memory_format=torch.channels_last) if torch.is_tensor(v) and v.dim() == 4 else v
        for k, v in batch.items()
    }
    cl = cl_model.translate(as_cl)
    assert torch.isfinite(low).all() and low.shape == ref.shape
    assert (low.float() - ref).abs().mean() < 0.05
    # channels-last reorders the convolutions' sums; the correlation softmax (temperature 0.005) scales such
    # float differences by up to 200, so a few thousandths remain, where a wrong layout would differ by O(1)
    torch.testing.assert_close(cl, ref, atol=5e-3, rtol=0)
    assert (cl - ref).abs().mean() < 1e-3
