"""The prior stage: the tiny autoencoder's shapes, the LDM scale factor, learning, and the shared cache."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from midms.data.synthetic import SyntheticPairs
from midms.errors import UserError
from midms.models.midms import prior_training
from midms.models.midms.conv_autoencoder import ConvAutoencoder
from midms.models.midms.prior import LatentPrior, build_prior
from midms.models.midms.prior_training import PriorStage, cache_key, prepare_prior, reconstruction_psnr, train_prior

UNET = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownBlock2D", "AttnDownBlock2D"],
    up_block_types=["AttnUpBlock2D", "UpBlock2D"],
    block_out_channels=[8, 16],
    layers_per_block=1,
    attention_head_dim=4,
    norm_num_groups=4,
)
CFG = {"kind": "ae", "vae": {"block_out_channels": [8, 8, 8]}, "unet": UNET}


def _prior(seed: int = 0) -> LatentPrior:
    torch.manual_seed(seed)
    return build_prior(kind="ae", vae={"block_out_channels": [8, 8, 8]}, unet=UNET)


def _images(n: int = 32, size: int = 32) -> torch.Tensor:
    ds = SyntheticPairs("train", size, sizes={"train": n})
    return torch.stack([ds[i]["image"] for i in range(n)])


def _batches(images: torch.Tensor, batch: int = 8):
    return ({"image": images[i : i + batch]} for i in range(0, len(images), batch))


def test_conv_autoencoder_downsamples_by_two_per_level_and_saves_like_a_diffusers_model(tmp_path):
    ae = ConvAutoencoder(block_out_channels=(8, 16, 16), latent_channels=3)
    z = ae.encode(torch.randn(2, 3, 64, 64)).latents
    assert z.shape == (2, 3, 16, 16)  # f = 2^(levels - 1) = 4
    assert ae.decode(z).sample.shape == (2, 3, 64, 64)
    assert not any(isinstance(m, torch.nn.GroupNorm | torch.nn.BatchNorm2d) for m in ae.modules())
    ae.save_pretrained(tmp_path / "ae")
    again = ConvAutoencoder.from_pretrained(tmp_path / "ae")
    assert list(again.config.block_out_channels) == [8, 16, 16]
    assert all(torch.equal(a, b) for a, b in zip(ae.state_dict().values(), again.state_dict().values(), strict=True))


def test_unknown_autoencoder_kind_is_a_clear_error():
    with pytest.raises(UserError, match="kind='vqgan'.*vq, kl, ae"):
        build_prior(kind="vqgan", unet=UNET)


def test_scale_factor_is_one_over_the_latent_std_and_the_autoencoder_learns():
    images = _images()
    prior = _prior()
    before = reconstruction_psnr(prior, images)
    stage = PriorStage(ae_steps=150, unet_steps=5, batch_size=8, max_images=32)
    info = train_prior(prior, images, stage)
    assert info["autoencoder_psnr"] > before + 3, (before, info["autoencoder_psnr"])
    with torch.no_grad():
        raw = torch.cat([prior.vae.encode(images[i : i + 8]).latents for i in range(0, 32, 8)])
    # the LDM's scale_by_std: 1 / std of the first stage's latents; an independent computation of it
    assert prior.scale_factor == pytest.approx(1.0 / raw.std().item(), rel=1e-5)
    assert prior.encode(images[:8]).std().item() == pytest.approx(1.0, abs=0.25)
    assert len(info["ae_curve"]) == 150 and len(info["unet_curve"]) == 5
    assert sum(info["ae_curve"][-10:]) < 0.5 * sum(info["ae_curve"][:10])


def test_the_unet_learns_to_predict_the_noise_of_the_scaled_latents():
    images = _images()
    prior = _prior()
    info = train_prior(prior, images, PriorStage(ae_steps=30, unet_steps=120, batch_size=8, unet_lr=3e-3))
    curve = info["unet_curve"]
    # predicting zero noise costs 1.0 (unit-variance noise); a UNet that learnt something does better
    assert sum(curve[-20:]) / 20 < 0.8 * sum(curve[:20]) / 20, (curve[:5], curve[-5:])


def test_the_unet_has_its_own_batch_size_and_the_autoencoder_keeps_batch_size():
    prior = _prior()
    seen: dict[str, list[int]] = {"ae": [], "unet": []}
    prior.vae.encoder.register_forward_hook(lambda _m, args, _out: seen["ae"].append(args[0].shape[0]))
    prior.unet.register_forward_hook(lambda _m, args, _out: seen["unet"].append(args[0].shape[0]))
    train_prior(prior, _images(16), PriorStage(ae_steps=2, unet_steps=3, batch_size=4, unet_batch_size=12))
    assert seen["unet"] == [12, 12, 12]
    assert seen["ae"][:2] == [4, 4]  # the training steps (encoding every image for the scale factor follows)
    seen["unet"].clear()
    fresh = _prior()
    fresh.unet.register_forward_hook(lambda _m, args, _out: seen["unet"].append(args[0].shape[0]))
    train_prior(fresh, _images(16), PriorStage(ae_steps=1, unet_steps=2, batch_size=4, unet_batch_size=None))
    assert seen["unet"] == [4, 4]  # None: the UNet takes batch_size
    with pytest.raises(UserError, match="batch sizes >= 1"):
        PriorStage(unet_batch_size=0)


def test_a_frozen_unet_is_trained_and_left_as_frozen_as_it_was():
    prior = _prior()
    prior.unet.requires_grad_(False)  # as the MIDMs warm-up leaves it
    before = [q.clone() for q in prior.unet.parameters()]
    train_prior(prior, _images(8), PriorStage(ae_steps=2, unet_steps=3, batch_size=4))
    assert any(not torch.equal(a, b) for a, b in zip(before, prior.unet.parameters(), strict=True))
    assert not any(q.requires_grad for q in prior.unet.parameters())


def test_training_leaves_the_runs_random_stream_and_is_reproducible():
    images = _images(16)
    stage = PriorStage(ae_steps=3, unet_steps=3, batch_size=4)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = _prior(1)
    torch.manual_seed(123)
    train_prior(a, images, stage)
    assert torch.equal(torch.rand(3), expected)  # the run's own generator is where it was
    b = _prior(1)
    train_prior(b, images, stage)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_the_cache_key_changes_with_the_data_the_sizes_and_the_budget():
    stage = PriorStage()
    key = cache_key("synthetic-a", CFG, stage)
    assert key.startswith("synthetic-a-")
    assert key == cache_key("synthetic-a", dict(CFG), PriorStage())
    assert key != cache_key("synthetic-b", CFG, stage)
    assert key != cache_key("synthetic-a", {**CFG, "vae": {"block_out_channels": [8, 8, 16]}}, stage)
    assert key != cache_key("synthetic-a", CFG, PriorStage(ae_steps=stage.ae_steps + 1))


def test_a_cached_prior_is_trained_once_and_loaded_identically(tmp_path, monkeypatch):
    images = _images(16)
    stage = PriorStage(ae_steps=4, unet_steps=4, batch_size=4)
    first = _prior(0)
    info = prepare_prior(first, _batches(images), stage, tmp_path, "synthetic-x", CFG)
    folder = tmp_path / cache_key("synthetic-x", CFG, stage)
    assert info["cache"] == str(folder) and (folder / "weights.safetensors").is_file()
    assert json.loads((folder / "prior.json").read_text())["scale_factor"] == pytest.approx(first.scale_factor)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind

    def no_training(*args, **kwargs):
        raise AssertionError("a cached prior must not be trained again")

    monkeypatch.setattr(prior_training, "train_prior", no_training)
    second = _prior(7)  # other initial weights: everything must come from the cache
    prepare_prior(second, _batches(images), stage, tmp_path, "synthetic-x", CFG)
    assert second.scale_factor == first.scale_factor
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_a_killed_write_leaves_no_cache_and_the_next_job_trains(tmp_path, monkeypatch):
    images = _images(16)
    stage = PriorStage(ae_steps=2, unet_steps=2, batch_size=4)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prior_training, "save_file", killed)
    with pytest.raises(KeyboardInterrupt):
        prepare_prior(_prior(), _batches(images), stage, tmp_path, "synthetic-y", CFG)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
    monkeypatch.undo()
    info = prepare_prior(_prior(), _batches(images), stage, tmp_path, "synthetic-y", CFG)
    assert (tmp_path / cache_key("synthetic-y", CFG, stage) / "prior.json").is_file() and info["cache"]


def test_two_jobs_started_together_train_the_prior_once(tmp_path, monkeypatch):
    images = _images(16)
    stage = PriorStage(ae_steps=2, unet_steps=2, batch_size=4)
    calls, real = [], prior_training.train_prior

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(prior_training, "train_prior", counted)
    priors = [_prior(0), _prior(1)]
    threads = [
        threading.Thread(target=prepare_prior, args=(p, _batches(images), stage, tmp_path, "synthetic-z", CFG))
        for p in priors
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert priors[0].scale_factor == priors[1].scale_factor


def test_without_a_dataset_key_the_prior_is_trained_and_not_cached(tmp_path):
    info = prepare_prior(_prior(), _batches(_images(8)), PriorStage(ae_steps=1, unet_steps=1), tmp_path, None, CFG)
    assert info["cache"] is None and list(tmp_path.iterdir()) == []


def test_bad_stage_settings_are_a_clear_error():
    with pytest.raises(UserError, match="steps must be >= 0"):
        PriorStage(ae_steps=-1)
    with pytest.raises(UserError, match="at least two training images"):
        prior_training.collect_images([{"image": torch.zeros(1, 3, 8, 8)}], 4)


def _trained_unet_and_iterates(monkeypatch, ema: bool) -> tuple[LatentPrior, list[dict[str, torch.Tensor]]]:
    """A UNet trained 5 steps, and its parameters after each optimiser step."""
    prior = _prior()
    iterates: list[dict[str, torch.Tensor]] = []
    step = torch.optim.Adam.step

    def recorded(self, *args, **kwargs):
        out = step(self, *args, **kwargs)
        iterates.append({k: v.detach().clone() for k, v in prior.unet.named_parameters()})
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", recorded)
    latents = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    stage = PriorStage(unet_steps=5, unet_batch_size=4, unet_lr=1e-2, unet_ema=ema)
    prior_training.train_unet(prior, latents, stage, torch.Generator().manual_seed(1))
    return prior, iterates


def test_the_unet_ends_with_the_ldm_moving_average_of_its_weights(monkeypatch):
    """LitEma of CompVis/latent-diffusion (ldm/modules/ema.py, use_num_upates=True): after update n the shadow
    moves by (1 - decay) toward the weights, decay = min(0.9999, (1 + n) / (10 + n)), starting from the
    weights before the first step."""
    prior, iterates = _trained_unet_and_iterates(monkeypatch, ema=True)
    torch.manual_seed(0)
    start = {k: v.detach() for k, v in _prior().unet.named_parameters()}  # the same initial weights
    shadow = {k: v.clone() for k, v in start.items()}
    for n, weights in enumerate(iterates, start=1):
        decay = min(0.9999, (1 + n) / (10 + n))
        for k in shadow:
            shadow[k] = shadow[k] - (1 - decay) * (shadow[k] - weights[k])
    final = dict(prior.unet.named_parameters())
    assert len(iterates) == 5
    for k in shadow:
        assert torch.allclose(final[k], shadow[k], atol=1e-7), k
    assert any(not torch.allclose(final[k], iterates[-1][k]) for k in shadow)  # not the last iterate


def test_without_the_moving_average_the_unet_ends_with_its_last_iterate(monkeypatch):
    prior, iterates = _trained_unet_and_iterates(monkeypatch, ema=False)
    for k, v in prior.unet.named_parameters():
        assert torch.equal(v, iterates[-1][k])
