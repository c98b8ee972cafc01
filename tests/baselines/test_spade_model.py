"""The SPADE LightningModule: config, the released loss terms and weights, the style code, G/D steps, optimisers."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
import pytest
import torch
import torch.nn.functional as F
import torchvision
from gan_steps import watch_gan_steps
from hydra import compose, initialize_config_dir
from midms.baselines.spade.model import SPADEModel
from torch.utils.data import DataLoader, default_collate

from midms.data.synthetic import SyntheticPairs
from midms.errors import UserError
from midms.nn import losses

CONF = Path(__file__).resolve().parents[2] / "conf"
RANDOM_VGG = ["model.vgg_weights=random", "model.vgg_widths=[4,8,8,16,16]"]

pytestmark = pytest.mark.usefixtures("one_thread")


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["paths.output_dir=/tmp/unused", "model=spade", *overrides])


def _data(n: int = 4) -> SyntheticPairs:
    sizes = {"train": n, "val": 2, "test": 2}
    return SyntheticPairs(split="train", image_size=64, num_classes=4, input="edges", sizes=sizes, seed=0)


def _model(ds: SyntheticPairs, *overrides: str, seed: int = 0) -> SPADEModel:
    cfg = _compose(*RANDOM_VGG, *overrides)
    L.seed_everything(seed)
    return hydra.utils.instantiate(cfg.model.module, data_spec=ds.spec)


def _batch(ds: SyntheticPairs, n: int = 2) -> dict:
    return default_collate([ds[i] for i in range(n)])


def _fit(model: SPADEModel, ds: SyntheticPairs, epochs: int = 1, batches: int | None = None) -> L.Trainer:
    trainer = L.Trainer(
        max_epochs=epochs,
        limit_train_batches=batches,
        limit_val_batches=0,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(ds, batch_size=2, shuffle=False))
    return trainer


def test_config_sizes_and_per_dataset_settings():
    tiny, paper = _compose().model.module, _compose("model.size=paper").model.module
    assert (tiny.ngf, tiny.encoder_size, tiny.use_vae) == (8, 64, True)
    assert (paper.ngf, paper.ndf, paper.spade_hidden, paper.encoder_size, paper.z_dim) == (64, 64, 128, 256, 256)
    assert tiny.settings.reconstruction_target == "target"
    assert _compose("dataset=celebahq").model.module.settings.niter == 30
    assert _compose("dataset=lsun_church").model.module.settings.niter_decay == 100


def test_the_loss_terms_are_the_released_ones_with_their_weights(tmp_path):
    """lambda_feat 10, lambda_vgg 10, lambda_kld 0.05 (``options/train_options.py``); the VGG loss at relu1_1 ..
    relu5_1 with weights 1/32 .. 1 on unnormalised [-1, 1] images (``VGGLoss`` in ``models/networks/loss.py``),
    recomputed here with torchvision's VGG19 slices (features[:2], [2:7], [7:12], [12:21], [21:30])."""
    torch.manual_seed(0)
    vgg = torchvision.models.vgg19().features.eval()
    torch.save(vgg.state_dict(), tmp_path / "vgg19.pth")
    ds = _data()
    cfg = _compose(f"model.vgg_weights={tmp_path / 'vgg19.pth'}", "model.vgg_widths=null")
    L.seed_everything(0)
    model = hydra.utils.instantiate(cfg.model.module, data_spec=ds.spec).eval()  # no spectral-norm iterations
    batch = _batch(ds)
    seen = {}
    encode = model.encode
    model.encode = lambda image, sample=True: seen.setdefault("code", encode(image, sample))
    with torch.no_grad():
        terms, out = model.generator_losses(batch)
    fake, real = out["fake"], batch["target"]
    _, mu, logvar = seen["code"]
    assert torch.equal(model.encoder(real)[0], mu)  # the encoder saw the ground truth
    normal = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    per_sample = torch.distributions.kl_divergence(normal, torch.distributions.Normal(0.0, 1.0)).flatten(1).sum(1)
    # the released weight: KLDLoss sums over each GPU's share, pix2pix_trainer.py averages the GPUs' losses; the
    # released runs had 4 a GPU (--batchSize 32 on 8 GPUs), so the term is the mean over GPUs of 4-sample sums
    released_per_gpu_batch = 4
    torch.testing.assert_close(terms["kld"], 0.05 * per_sample.mean() * released_per_gpu_batch)

    slices = [vgg[:2], vgg[2:7], vgg[7:12], vgg[12:21], vgg[21:30]]
    expected, x, y = 0.0, fake, real
    with torch.no_grad():
        for weight, part in zip((1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0), slices, strict=True):
            x, y = part(x), part(y)
            expected = expected + weight * F.l1_loss(x, y)
    torch.testing.assert_close(terms["vgg"], 10 * expected, rtol=1e-4, atol=1e-6)

    with torch.no_grad():
        pred_fake, pred_real = model.discriminate(batch["semantics"], fake, real)
    torch.testing.assert_close(terms["gan_feat"], 10 * losses.gan_feature_matching_loss(pred_fake, pred_real))
    torch.testing.assert_close(terms["gan"], losses.hinge_g_loss(pred_fake))
    assert set(terms) == {"kld", "gan", "gan_feat", "vgg"}


def test_the_kl_term_weighs_the_same_on_one_device_or_several():
    """32 samples in one process, 16 on each of two (DDP averages the ranks' gradients) and the released 8 GPUs
    × 4 (pix2pix_trainer.py: the mean over GPUs of each GPU's KLDLoss sum) give one effective term."""
    from midms.baselines.spade.model import DEFAULT_SETTINGS

    torch.manual_seed(0)
    mu, logvar = torch.randn(32, 256), torch.randn(32, 256) * 0.1

    def term(m, lv):  # the model's computation for a local batch
        s = DEFAULT_SETTINGS
        return losses.kl_divergence(m, lv) * s["lambda_kld"] * s["kld_reference_batch"] / m.shape[0]

    released = torch.stack(
        [0.05 * losses.kl_divergence(m, lv) for m, lv in zip(mu.chunk(8), logvar.chunk(8), strict=True)]
    ).mean()
    two_ranks = torch.stack([term(m, lv) for m, lv in zip(mu.chunk(2), logvar.chunk(2), strict=True)]).mean()
    torch.testing.assert_close(term(mu, logvar), released)
    torch.testing.assert_close(two_ranks, released)


def test_a_caffe_vgg_or_missing_weights_is_one_clear_user_error(tmp_path, monkeypatch):
    from midms.nn.vgg import VGG19Features

    small = VGG19Features(["relu1_1"], weights=None, widths=(2, 2, 2, 2, 2))
    torch.save(small.convs.state_dict(), tmp_path / "vgg19_conv.pth")  # conv1_1.weight ...: CoCosNet's Caffe layout
    spec = _data().spec
    with pytest.raises(UserError, match="Caffe-layout VGG19.*vgg_weights=torchvision"):
        SPADEModel(spec, ngf=2, ndf=2, spade_hidden=2, encoder_size=64, vgg_weights=str(tmp_path / "vgg19_conv.pth"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(UserError, match="model=spade needs torchvision's ImageNet VGG19.*vgg19-dcbb9e9d.pth"):
        SPADEModel(spec, ngf=2, ndf=2, spade_hidden=2, encoder_size=64)


def test_the_exemplar_sets_the_style_at_evaluation():
    ds = _data()
    model = _model(ds, "model.inference_z=mean").eval()
    batch = _batch(ds)
    first = model.translate(batch)
    assert first.shape == (2, 3, 64, 64) and first.abs().max() <= 1
    assert torch.equal(first, model.translate(batch))  # the mean code: deterministic
    swapped = {**batch, "exemplar": batch["exemplar"].flip(0)}
    assert not torch.allclose(model.translate(swapped), first)
    sampled = _model(ds, seed=0).eval()
    torch.manual_seed(1)
    a = sampled.translate(batch)
    torch.manual_seed(1)
    assert torch.equal(a, sampled.translate(batch)) and not torch.equal(a, sampled.translate(batch))


def test_without_the_encoder_the_exemplar_is_not_used_and_the_protocol_says_so():
    ds = _data()
    model = _model(ds, "model.use_vae=false").eval()
    batch = _batch(ds)
    swapped = {**batch, "exemplar": batch["exemplar"].flip(0)}
    assert model.encoder is None and torch.equal(model.translate(batch), model.translate(swapped))
    assert "exemplar is not used" in model.protocol["note"] and model.protocol["use_vae"] is False


def test_one_g_step_changes_generator_and_encoder_and_one_d_step_only_the_discriminator():
    ds = _data(n=2)
    model = _model(ds)
    nets = {
        "g": [*model.generator.parameters(), *model.encoder.parameters()],
        "d": list(model.discriminator.parameters()),
    }
    seen = watch_gan_steps(model, nets)
    _fit(model, ds, batches=1)
    assert seen["g"]["changed"] == {"g": True, "d": False} and seen["d"]["changed"] == {"g": False, "d": True}
    assert seen["g"]["frozen_grads"] == [] == seen["d"]["frozen_grads"] and seen["g"]["own_grads"] > 0


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_optimisers_follow_the_released_ttur_and_schedule():
    """``create_optimizers``: Adam β = (0, 0.9); TTUR: G + E at lr/2 = 1e-4, D at 2·lr = 4e-4; ``--no_TTUR``: both
    at lr; constant for niter epochs, then linear to zero over niter_decay."""
    ds = _data()
    model = _model(ds, "model.settings.niter=2", "model.settings.niter_decay=4")
    (opt_g, opt_d), (sched_g, sched_d) = model.configure_optimizers()
    assert opt_g.param_groups[0]["lr"] == pytest.approx(1e-4) and opt_d.param_groups[0]["lr"] == pytest.approx(4e-4)
    assert opt_g.defaults["betas"] == (0.0, 0.9) and opt_d.defaults["betas"] == (0.0, 0.9)
    assert opt_g.defaults["eps"] == 1e-8
    assert len(opt_g.param_groups[0]["params"]) == len([*model.generator.parameters(), *model.encoder.parameters()])
    lrs = []
    for _ in range(7):
        lrs.append(opt_g.param_groups[0]["lr"] / 1e-4)
        sched_g.step()
        sched_d.step()
    assert lrs == pytest.approx([1, 1, 1, 0.75, 0.5, 0.25, 0.0])
    (opt_g, opt_d), _ = _model(ds, "model.module.ttur=false").configure_optimizers()
    assert opt_g.param_groups[0]["lr"] == opt_d.param_groups[0]["lr"] == pytest.approx(2e-4)


def test_tiny_training_lowers_the_vgg_loss():
    ds = _data(n=4)
    batch = _batch(ds, n=4)

    def vgg_term(model: SPADEModel) -> float:
        torch.manual_seed(0)
        with torch.no_grad():
            values, _ = model.eval().generator_losses(batch)
        model.train()
        return values["vgg"].item()

    model = _model(ds, seed=1)
    before = vgg_term(model)
    _fit(model, ds, epochs=4)
    assert vgg_term(model) < before


def test_bad_settings_are_user_errors(caplog):
    spec = _data().spec
    tiny = {"ngf": 2, "ndf": 2, "spade_hidden": 2, "encoder_size": 64, "vgg_weights": "random", "vgg_widths": [2] * 5}
    with pytest.raises(UserError, match="inference_z"):
        SPADEModel(spec, inference_z="median", **tiny)
    with pytest.raises(UserError, match="unknown settings.*lambda_l1"):
        SPADEModel(spec, settings={"lambda_l1": 1.0}, **tiny)
    small = SyntheticPairs(split="train", image_size=32, num_classes=4, sizes={"train": 2, "val": 2, "test": 2}).spec
    with pytest.raises(UserError, match="at least 64 px"):
        SPADEModel(small, **tiny)
    with caplog.at_level(logging.WARNING):
        model = SPADEModel(spec, **tiny)
    assert "RANDOM" in model.protocol["warning"] and "vgg_weights=random" in caplog.text
