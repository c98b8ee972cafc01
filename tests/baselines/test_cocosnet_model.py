"""The CoCosNet LightningModule: config, VGG weights, the translate/warp contract, G/D steps, optimisers."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
import pytest
import torch
import torch.nn.functional as F
from gan_steps import watch_gan_steps
from hydra import compose, initialize_config_dir
from midms.baselines.cocosnet.model import CoCosNet
from torch.utils.data import DataLoader, default_collate

from midms.data.synthetic import SyntheticPairs
from midms.errors import UserError

CONF = Path(__file__).resolve().parents[2] / "conf"
RANDOM_VGG = ["model.vgg_weights=random", "model.vgg_widths=[4,8,8,16,16]"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["paths.output_dir=/tmp/unused", "model=cocosnet", *overrides])


def _data(input_: str = "edges", n: int = 4) -> SyntheticPairs:
    sizes = {"train": n, "val": 2, "test": 2}
    return SyntheticPairs(split="train", image_size=64, num_classes=4, input=input_, sizes=sizes, seed=0)


def _model(ds: SyntheticPairs, *overrides: str, seed: int = 0) -> CoCosNet:
    cfg = _compose(*RANDOM_VGG, *overrides)
    L.seed_everything(seed)
    return hydra.utils.instantiate(cfg.model.module, data_spec=ds.spec)


def _batch(ds: SyntheticPairs, n: int = 2) -> dict:
    return default_collate([ds[i] for i in range(n)])


def _fit(
    model: CoCosNet, ds: SyntheticPairs, epochs: int = 1, batches: int | None = None, ckpt_path=None, **kw
) -> L.Trainer:
    trainer = L.Trainer(
        max_epochs=epochs,
        limit_train_batches=batches,
        limit_val_batches=0,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kw,
    )
    trainer.fit(model, DataLoader(ds, batch_size=2, shuffle=False), ckpt_path=ckpt_path)
    return trainer


def test_config_sizes_and_per_dataset_settings():
    assert _compose().model.module.ngf == 8 and _compose("model.size=paper").model.module.ngf == 64
    celeba = _compose("dataset=celebahq").model.module.settings
    assert celeba.which_perceptual == "relu4_2" and celeba.weight_perceptual == 0.001 and celeba.fm_ratio == 1.0
    assert celeba.warp_cycle_w == 1.0 and celeba.warp_bilinear and celeba.niter == 30 and celeba.niter_decay == 30
    lsun = _compose("dataset=lsun_church").model.module.settings
    assert lsun.maskmix and lsun.warp_mask_losstype == "direct" and lsun.weight_mask == 100.0
    assert lsun.which_perceptual == "relu5_2" and lsun.fm_ratio == 0.1 and lsun.niter == 100
    assert _compose().model.module.settings.reconstruction_target == "target"


def test_paper_size_keeps_the_released_rate_and_initialisation_and_tiny_its_short_run_recipe():
    """Paper: the released --lr 0.0002 and --init_variance 0.02 (options/train_options.py, base_options.py) and the
    ImageNet VGG19. Tiny: Glorot gain 1 and 10× the rate for a few hundred CPU steps, and on the synthetic data a
    loss network trained on its training split at widths 8 to 64 (docs/findings-2026-12.md)."""
    paper = _compose("model.size=paper", "dataset=celebahq").model
    assert paper.module.lr == 2e-4 and paper.module.init_gain == 0.02 and paper.vgg_weights.endswith("vgg19_conv.pth")
    assert _compose("model.size=paper").model.vgg_weights == "torchvision"  # never the domain network
    tiny = _compose().model
    assert tiny.module.lr == 2e-3 and tiny.module.init_gain == 1.0
    assert tiny.vgg_weights == "domain" and list(tiny.vgg_widths) == [8, 16, 32, 64, 64]
    assert _compose("dataset=celebahq").model.vgg_weights != "domain"  # no domain network without a ground truth


@pytest.mark.parametrize(("ablation", "term"), [("cocosnet_no_ctx", "contextual"), ("cocosnet_no_domain", "domain")])
def test_ablations_remove_their_loss_term(ablation, term):
    ds = _data()
    full, _ = _model(ds).generator_losses(_batch(ds))
    ablated, _ = _model(ds, f"ablation={ablation}").generator_losses(_batch(ds))
    assert term in full and term not in ablated
    assert set(full) - set(ablated) == {term}


def test_missing_vgg_weights_are_one_clear_user_error(tmp_path, monkeypatch):
    ds = _data()
    path = tmp_path / "vgg19_conv.pth"
    with pytest.raises(UserError, match=r"vgg19_conv\.pth") as err:
        CoCosNet(ds.spec, ngf=4, spade_hidden=8, match_channels=8, vgg_weights=str(path))
    assert str(path) in str(err.value) and "model.vgg_weights" in str(err.value)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(UserError, match="vgg19-dcbb9e9d.pth"):
        CoCosNet(ds.spec, ngf=4, spade_hidden=8, match_channels=8, vgg_weights="torchvision")


def test_random_vgg_is_logged_and_recorded(caplog):
    ds = _data()
    with caplog.at_level(logging.WARNING):
        model = _model(ds)
    assert "vgg_weights=random" in caplog.text
    assert model.protocol["vgg_weights"] == "random" and "RANDOM" in model.protocol["warning"]


def test_translate_and_warp_follow_the_contract():
    ds = _data("labels")
    model = _model(ds).eval()
    batch = _batch(ds)
    out = model.translate(batch)
    assert out.shape == (2, 3, 64, 64) and out.abs().max() <= 1
    warped = model.warp(batch)
    assert warped.shape == batch["exemplar_semantics"].shape
    # one-hot rows sum to one, and so do their soft warps
    torch.testing.assert_close(warped.sum(1), torch.ones(2, 64, 64), atol=1e-4, rtol=0)


@pytest.mark.parametrize("bilinear", [False, True])
def test_warp_with_a_one_hot_correlation_is_an_exact_permutation(monkeypatch, bilinear):
    ds = _data()
    model = _model(ds).eval()
    model.corr.warp_bilinear = bilinear
    batch = _batch(ds, 1)
    perm = torch.randperm(16 * 16)
    monkeypatch.setattr(model.corr, "correlate", lambda *a: (F.one_hot(perm, 256).float()[None], {}))
    low = torch.randn(1, 5, 16, 16)
    values = F.interpolate(low, scale_factor=4, mode="nearest")  # exemplar-aligned, constant on 4×4 cells
    expected_low = low.flatten(2)[:, :, perm].view(1, 5, 16, 16)
    mode = {"mode": "bilinear", "align_corners": False} if bilinear else {"mode": "nearest"}
    expected = F.interpolate(expected_low, size=(64, 64), **mode)
    torch.testing.assert_close(model.warp(batch, values), expected, atol=1e-5, rtol=0)


def test_mask_loss_is_zero_for_a_perfect_warp_and_log_k_for_a_uniform_one():
    ds = _data("labels")
    model = _model(ds, "+model.loss_overrides.mask_ignore_index=null")
    batch = _batch(ds)
    gt = F.interpolate(batch["labels"][:, None].float(), size=(16, 16), mode="nearest")[:, 0].long()
    perfect = F.one_hot(gt, 4).permute(0, 3, 1, 2).float()
    assert model.mask_loss(perfect, batch).item() == pytest.approx(0.0, abs=1e-6)
    uniform = torch.full((2, 4, 16, 16), 0.25)
    assert model.mask_loss(uniform, batch).item() == pytest.approx(torch.log(torch.tensor(4.0)).item(), rel=1e-4)


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
def test_one_g_step_and_one_d_step_change_the_right_parameters():
    ds = _data()
    model = _model(ds)
    nets = {"g": [*model.generator.parameters(), *model.corr.parameters()], "d": [*model.discriminator.parameters()]}
    vgg_before = [p.detach().clone() for p in model.vgg.parameters()]
    seen = watch_gan_steps(model, nets)
    _fit(model, ds, batches=1)
    assert seen["g"]["frozen_grads"] == [] and seen["g"]["own_grads"] > 0
    assert seen["g"]["changed"] == {"g": True, "d": False}
    assert seen["d"]["frozen_grads"] == [] and seen["d"]["own_grads"] > 0
    assert seen["d"]["changed"] == {"g": False, "d": True}
    assert all(torch.equal(a, p) for a, p in zip(vgg_before, model.vgg.parameters(), strict=True))


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_optimisers_follow_the_released_ttur_and_schedule():
    ds = _data()
    # the released base rate (options/train_options.py: --lr 0.0002), set on the tiny size
    model = _model(ds, "model.settings.niter=2", "model.settings.niter_decay=4", "model.sizes.tiny.lr=2e-4")
    (opt_g, opt_d), (sched_g, sched_d) = model.configure_optimizers()
    assert [g["lr"] for g in opt_g.param_groups] == [1e-4, 1e-4] and opt_g.defaults["eps"] == 1e-3
    assert opt_g.defaults["betas"] == (0.0, 0.9) and opt_d.defaults["betas"] == (0.0, 0.9)
    assert opt_d.param_groups[0]["lr"] == pytest.approx(4e-4)
    assert len(opt_g.param_groups[0]["params"]) + len(opt_g.param_groups[1]["params"]) == len(
        [*model.generator.parameters(), *model.corr.parameters()]
    )
    lrs = []
    for _ in range(7):  # epochs 0..6: constant through epoch niter, then linear decay
        lrs.append(opt_d.param_groups[0]["lr"] / 4e-4)
        sched_g.step()
        sched_d.step()
    assert lrs == pytest.approx([1, 1, 1, 0.75, 0.5, 0.25, 0.0])
    assert opt_g.param_groups[0]["lr"] == 0.0


def test_tiny_training_lowers_the_reconstruction_losses():
    ds = _data(n=4)
    batch = _batch(ds)
    terms = ("fm", "perc", "contextual", "domain", "warp_cycle")

    def reconstruction(model: CoCosNet) -> float:
        with torch.no_grad():
            values, _ = model.eval().generator_losses(batch)
        model.train()
        return sum(values[k].item() for k in terms)

    model = _model(ds, "model.sizes.tiny.lr=2e-4", "model.sizes.tiny.init_gain=0.02", seed=1)  # the released recipe
    before = reconstruction(model)
    _fit(model, ds, epochs=3)
    assert reconstruction(model) < before


def test_training_is_reproducible_under_a_seed():
    ds = _data(n=2)

    def trained() -> list[torch.Tensor]:
        model = _model(ds, seed=3)
        L.seed_everything(3)
        _fit(model, ds, batches=1)
        return [p.detach() for p in model.parameters()]

    first, second = trained(), trained()
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    other = [p.detach() for p in _model(ds, seed=4).parameters()]  # another seed: other weights
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_checkpoint_loads_with_weights_only_and_training_resumes_from_its_step(tmp_path):
    ds = _data(n=2)
    model = _model(ds, seed=5)
    trainer = _fit(model, ds, batches=1)
    ckpt = tmp_path / "last.ckpt"
    trainer.save_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=True)  # plain hyper-parameters: no OmegaConf objects pickled
    assert state["global_step"] == 2 and len(state["optimizer_states"]) == 2 and len(state["lr_schedulers"]) == 2
    assert state["hyper_parameters"]["settings"]["reconstruction_target"] == "target"
    resumed = _model(ds, seed=6)
    trainer = _fit(resumed, ds, epochs=2, batches=1, ckpt_path=ckpt)
    assert trainer.global_step == 4 and trainer.current_epoch == 2


def test_the_fm_weights_are_scaled_to_the_released_per_gpu_batch(monkeypatch):
    from midms.nn import losses

    seen = []
    real = losses.paired_sample_weights
    monkeypatch.setattr(losses, "paired_sample_weights", lambda *a, **kw: seen.append(kw) or real(*a, **kw))
    ds = _data(n=2)
    with torch.no_grad():
        _model(ds, seed=0).generator_losses(_batch(ds))
    assert seen == [{"reference_batch": 4}]  # the released runs: 8 GPUs × 4 (CoCosNet README, --batchSize 32)


def test_warp_self_is_the_released_paired_l1_of_the_warp_with_the_deepfashion_weight():
    # CoCosNet README, DeepFashion command (every exemplar is the same person in another pose, as every synthetic
    # exemplar has a ground-truth translation): --warp_self_w 100 at --batchSize 32 on 8 GPUs, i.e. 4 per GPU
    assert _compose().model.module.settings.warp_self_w == 100
    assert "warp_self_w" not in _compose("dataset=celebahq").model.module.settings  # the released default: 0
    for n in (2, 3):
        ds = _data(n=n)
        batch = _batch(ds, n)
        model = _model(ds)
        with torch.no_grad():
            terms, out = model.generator_losses(batch)
        # pix2pix_model.py: mean(|warp_out - real| * flags / sum(flags)) * warp_self_w, flags all 1 here, on a
        # per-GPU batch of 4: the paired mean L1 × 100 / 4 whatever the local batch
        expected = (out["warp"] - batch["target"]).abs().mean() * 100 / 4
        assert torch.allclose(terms["warp_self"], expected, rtol=1e-4)
    with torch.no_grad():
        terms, _ = _model(ds, "+model.loss_overrides.warp_self_w=0").generator_losses(batch)
    assert "warp_self" not in terms
