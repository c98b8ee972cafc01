"""The papers' settings, as a table: every (entry point, model) pair composes the official values.

Each expected value is written here with the official file it comes from; none is read from the module under
test. Sources: cvlab-kaist/MIDMs (``train.py``, ``inference.py``, ``utils_training/optimize.py``, ``util/util.py``,
``models/midms.py``, ``data/*_dataset.py``), microsoft/CoCosNet (README training commands, ``options/``,
``models/networks/``), tkarras/progressive_growing_of_gans (``metrics/sliced_wasserstein.py``) and
switchablenorms/CelebAMask-HQ (``face_parsing/Data_preprocessing/g_mask.py``).
"""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from midms.data.contract import DataSpec
from midms.errors import UserError
from midms.presets import check_preset, missing_requirements, requirements

CONF = Path(__file__).resolve().parents[1] / "conf"

# the two ways to ask for a paper's run: the headline sweep's `dataset=...`, and the experiment preset
ENTRY_POINTS = {
    "celebahq": (["dataset=celebahq"], ["experiment=paper_celebahq"]),
    "lsun_church": (["dataset=lsun_church"], ["experiment=paper_lsun_church"]),
}
CAFFE_VGG = "vgg19_conv.pth"  # CoCosNet README, Training: the VGG both official codes load (MIDMs train.py too)

COMMON = {  # both models, both datasets
    "model.size": "paper",
    "dataset.image_size": 256,  # --crop_size 256 (celebahqedge_dataset.py, lsun_church_dataset.py)
    "dataset.load_size": 286,  # load_size 286 when is_train (the same files)
    "dataset.real_reference_probability": 0.7,  # --real_reference_probability (CoCosNet train_options.py, MIDMs)
    "dataset.hard_reference_probability": 0.2,  # --hard_reference_probability
    "trainer.precision": "32-true",  # MIDMs --amp False; CoCosNet trains without AMP
    "trainer.accelerator": "gpu",
    "evaluation.image_format": "jpg",  # MIDMs inference.py saves <id>.jpg; CoCosNet FID 14.3 is on .jpg outputs
    "metrics.fid.mode": "legacy_pytorch",  # pytorch-fid (microsoft/CoCosNet#19)
    "metrics.kid.mode": "legacy_pytorch",
}

MIDMS = {  # cvlab-kaist/MIDMs train.py argparse defaults
    "model.module.training.lr": 3e-6,  # --lr
    "model.module.training.lr_diffusion": 3e-6,  # --lr_diff_backbone
    "model.module.training.weight_decay": 0.05,  # --weight-decay
    "model.module.training.lr_milestones": [10, 12, 14, 24],  # --step (MultiStepLR)
    "model.module.training.lr_gamma": 0.3,  # --step_gamma
    "model.module.training.warmup_iter": 10000,  # --warmup_iter
    "model.module.training.interleave_steps": 4,  # --diffusion_iteratiom_num
    "model.module.training.domain_weight": 10.0,  # utils_training/optimize.py: loss_domain * 10
    "model.module.temperature": 0.005,  # util/util.py: soft_warp(alpha=0.005), get_flow(temp=0.005)
    "model.module.cycle_threshold": 0.5,  # models/midms.py: fb_mask = (fbcheck(...) < 0.5), in grid units
    "model.module.sampler.confidence": True,  # --confidence_masking True
    "model.module.sampler.ddim_steps": 16,  # models/midms.py forward: ddim_num_steps = 16 if mode == "inference"
    "model.module.sampler.interleave_steps": None,  # ... t_list: ddim_num_steps // 4 steps from 3/4 of the grid on
    "model.module.sampler.rematch_at": [1, 2],  # ... re-matching when idx in range(1, 3)
    "model.module.sampler.refine": True,  # ... mode == "inference": copied_diffusion_sampler.sample(...)
    "model.module.sampler.refine_grid": 200,  # ... sample(200, ...)
    "model.module.sampler.refine_start": 180,  # ... hijack_step=180
    "model.module.sampler.refine_eta": 1.0,  # ... eta=1
    "model.module.cycle_mode": "official",  # util/util.py fbcheck: the forward flow sampled at the forward target
    "trainer.max_epochs": 4,  # --epochs 4
    "dataset.datamodule.batch_size": 8,  # --batch-size 1 per process on the README's 8 GPUs
}
MIDMS_LOSSES = {  # utils_training/optimize.py
    "celebahq": {"perc_layer": "relu4_2", "perc_weight": 0.002, "seg_weight": 0.0},  # edges: weight_perceptual 0.002
    "lsun_church": {"perc_layer": "relu5_2", "perc_weight": 0.05, "seg_weight": 100.0},  # labels: 0.05, weight_mask 100
}
MIDMS_FEATURE_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)  # optimize.py: weights of loss_feat, relu1_2 .. relu5_2

COCOSNET = {  # microsoft/CoCosNet options/ and models/networks/
    "model.module.ngf": 64,  # base_options.py --ngf 64
    "model.module.ndf": 64,  # --ndf 64
    "model.module.spade_hidden": 128,  # normalization.py: SPADE nhidden = 128
    "model.module.lr": 2e-4,  # train_options.py --lr 0.0002 (TTUR: G at lr/2, D at 2 lr)
    "model.module.temperature": 0.01,  # networks/correspondence.py: temperature=0.01
    "model.module.use_attention": True,  # README training commands (celebahqedge, ade20k): --use_attention
    "dataset.datamodule.batch_size": 32,  # README: --batchSize 32 over 8 GPUs
}
COCOSNET_SETTINGS = {  # the README's training commands; options/train_options.py for the rest
    "celebahq": {  # celebahqedge: --niter 30 --niter_decay 30 --which_perceptual 4_2 --weight_perceptual 0.001
        "which_perceptual": "relu4_2",  # --use_attention --maskmix --PONO --PONO_C --vgg_normal_correct
        "weight_perceptual": 0.001,  # --fm_ratio 1.0 --warp_bilinear --warp_cycle_w 1 --batchSize 32
        "fm_ratio": 1.0,
        "warp_bilinear": True,
        "warp_cycle_w": 1.0,
        "maskmix": True,
        "adaptor_kernel": 4,  # the README's celebahqedge test command: --adaptor_kernel 4
        "warp_mask_losstype": "none",
        "weight_mask": 0.0,
        "niter": 30,
        "niter_decay": 30,
    },
    "lsun_church": {  # the ADE20K command: --niter 100 --niter_decay 100 --use_attention --maskmix
        "which_perceptual": "relu5_2",  # --warp_mask_losstype direct --weight_mask 100.0 --PONO --PONO_C
        "weight_perceptual": 0.01,  # train_options.py defaults: --which_perceptual 5_2 --weight_perceptual 0.01
        "fm_ratio": 0.1,  # --fm_ratio 0.1
        "warp_bilinear": False,
        "warp_cycle_w": 0.0,
        "maskmix": True,
        "adaptor_kernel": 3,  # base_options.py --adaptor_kernel 3
        "warp_mask_losstype": "direct",
        "weight_mask": 100.0,
        "niter": 100,
        "niter_decay": 100,
    },
}
COCOSNET_LOSS_WEIGHTS = {  # train_options.py defaults, the same for every command
    "lambda_vgg": 10.0,  # --lambda_vgg
    "lambda_feat": 10.0,  # --lambda_feat
    "ctx_w": 1.0,  # --ctx_w
    "weight_gan": 10.0,  # --weight_gan
    "novgg_featpair": 10.0,  # --novgg_featpair (domain alignment)
    "fm_reference_batch": 4,  # the README's 32 over 8 GPUs: the per-GPU batch its feature-matching mean sees
}
COCOSNET_SETTINGS["ade20k"] = COCOSNET_SETTINGS["lsun_church"]  # the same README command, the one it was written for
COCOSNET_SETTINGS["deepfashion"] = {  # the README's DeepFashion training command: --niter 50 --niter_decay 50
    "which_perceptual": "relu4_2",  # --which_perceptual 4_2 --weight_perceptual 0.001 --use_attention
    "weight_perceptual": 0.001,  # --real_reference_probability 0.0 --PONO --PONO_C --vgg_normal_correct
    "fm_ratio": 1.0,  # --fm_ratio 1.0 --warp_bilinear --warp_self_w 100 --no_flip --warp_patch --video_like
    "warp_bilinear": True,
    "warp_patch": True,
    "warp_self_w": 100.0,
    "warp_cycle_w": 0.0,  # train_options.py default
    "maskmix": False,  # no --maskmix in the DeepFashion commands (base_options.py: store_true)
    "adaptor_kernel": 4,  # the README's DeepFashion test command: --adaptor_kernel 4
    "warp_mask_losstype": "none",  # base_options.py default
    "niter": 50,
    "niter_decay": 50,
}
DEEPFASHION_DATA = {  # data/deepfashion_dataset.py and the README's DeepFashion commands
    "dataset.image_size": 256,  # crop_size 256
    "dataset.load_size": 286,  # load_size 286 when is_train
    "dataset.flip": False,  # --no_flip
    "dataset.video_like": True,  # --video_like
    "dataset.real_reference_probability": 0.0,  # --real_reference_probability 0.0
}
COCOSNET_MASK_IGNORE = {
    "lsun_church": 0,
    "ade20k": 0,
}  # pix2pix_model.py compute_generator_loss: weight[gt_label == 0] = 0
ADAM_EPS = {  # the optimisers' epsilon
    "cocosnet_g": 1e-3,  # CoCosNet pix2pix_model.py create_optimizers: Adam(G_params, ..., eps=1e-3)
    "cocosnet_d": 1e-8,  # ... Adam(D_params, lr=D_lr, betas=(beta1, beta2)): torch's default
    "spade": 1e-8,  # SPADE pix2pix_model.py create_optimizers: Adam(..., betas=(beta1, beta2)) for G and D
    "midms": 1e-8,  # MIDMs train.py: optim.AdamW([...], weight_decay=args.weight_decay)
}
COCOSNET_EPOCHS = {"celebahq": 60, "lsun_church": 200, "ade20k": 200, "deepfashion": 100}  # niter + niter_decay
COCOSNET_BETAS = (0.0, 0.9)  # train_options.py: TTUR (no_TTUR unset) sets beta1 = 0, beta2 = 0.9

SPADE = {  # NVlabs/SPADE options/ and models/networks/ (--use_vae)
    "model.module.ngf": 64,  # base_options.py --ngf 64 (the encoder's width too: encoder.py ndf = opt.ngf)
    "model.module.ndf": 64,  # train_options.py --ndf 64
    "model.module.spade_hidden": 128,  # normalization.py: SPADE nhidden = 128
    "model.module.z_dim": 256,  # base_options.py --z_dim 256
    "model.module.encoder_size": 256,  # encoder.py: the image is resized to 256 x 256
    "model.module.use_vae": True,  # --use_vae: the exemplar's style code
    "model.module.lr": 2e-4,  # train_options.py --lr 0.0002
    "model.module.ttur": True,  # --no_TTUR unset
    "dataset.datamodule.batch_size": 32,  # as the CoCosNet row beside it
}
SPADE_LOSS_WEIGHTS = {"lambda_feat": 10.0, "lambda_vgg": 10.0, "lambda_kld": 0.05}  # train_options.py
TORCHVISION_VGG = "vgg19-dcbb9e9d.pth"  # architecture.py VGG19: torchvision.models.vgg19(pretrained=True)

SPEC = {  # the data contract at a small size (the settings do not depend on it)
    "celebahq": DataSpec(semantic_nc=15, image_size=64, num_classes=19, has_target=False),
    "lsun_church": DataSpec(semantic_nc=151, image_size=64, num_classes=151, has_target=False),
    "ade20k": DataSpec(semantic_nc=151, image_size=64, num_classes=151, has_target=False),
    "deepfashion": DataSpec(semantic_nc=20, image_size=64, num_classes=None, has_target=False),
}


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["paths.output_dir=/tmp/unused", *overrides])


def _cases():
    for dataset, entries in ENTRY_POINTS.items():
        for entry in entries:
            for model in ("midms", "cocosnet", "spade"):
                yield pytest.param(dataset, model, entry, id=f"{entry[0]}-{model}")


def _check(cfg, expected: dict) -> None:
    for key, value in expected.items():
        got = OmegaConf.select(cfg, key, throw_on_missing=True)
        assert got == (pytest.approx(value) if isinstance(value, float) else value), key


@pytest.mark.parametrize(("dataset", "model", "entry"), list(_cases()))
def test_every_entry_point_composes_the_papers_settings(dataset, model, entry):
    cfg = _compose(*entry, f"model={model}")
    OmegaConf.resolve(cfg)
    assert cfg.preset.name == f"{dataset}_{model}"
    _check(cfg, COMMON)
    _check(cfg, {"midms": MIDMS, "cocosnet": COCOSNET, "spade": SPADE}[model])
    if model == "midms":
        assert Path(cfg.model.module.vgg.weights).name == CAFFE_VGG
    elif model == "spade":
        assert Path(cfg.model.module.vgg_weights).name == TORCHVISION_VGG
        assert cfg.trainer.max_epochs == COCOSNET_EPOCHS[dataset]  # the budget of the CoCosNet row
        assert (cfg.model.module.settings.niter, cfg.model.module.settings.niter_decay) == (
            COCOSNET_SETTINGS[dataset]["niter"],
            COCOSNET_SETTINGS[dataset]["niter_decay"],
        )
    else:
        assert Path(cfg.model.module.vgg_weights).name == CAFFE_VGG
        assert cfg.trainer.max_epochs == COCOSNET_EPOCHS[dataset]
        settings = cfg.model.module.settings
        for key, value in COCOSNET_SETTINGS[dataset].items():
            assert settings[key] == value, key
    if dataset == "celebahq":  # CoCosNet requirements.txt: scikit-image==0.14.2, whose Canny smooths in uint8
        assert cfg.dataset.canny == "official"
    for metric in ("semantic", "style"):  # the papers' VGG metrics use the Caffe VGG19 too
        assert Path(cfg.metrics[metric].weights).name == CAFFE_VGG


@pytest.mark.parametrize("dataset", ["celebahq", "lsun_church"])
def test_the_midms_module_built_from_a_preset_uses_the_official_loss_weights(dataset):
    cfg = _compose(f"dataset={dataset}", "model=midms")
    tiny = _compose("model=midms").model.sizes.tiny  # small networks: the loss settings are the paper preset's
    module_cfg = OmegaConf.merge(cfg.model.module, {"matching": tiny.matching, "vgg": tiny.vgg})
    module_cfg.prior = tiny.prior  # replaced, not merged: the tiny autoencoder takes other arguments
    model = hydra.utils.instantiate(module_cfg, data_spec=SPEC[dataset])
    for key, value in MIDMS_LOSSES[dataset].items():
        assert getattr(model, key) == (pytest.approx(value) if isinstance(value, float) else value), key
    from midms.models.midms.model import FEAT_WEIGHTS

    assert pytest.approx(MIDMS_FEATURE_WEIGHTS) == FEAT_WEIGHTS
    assert model.cfg["warmup_iter"] == 10000 and model.temperature == 0.005
    assert model.schedule.unet_timesteps == [249, 187, 125, 63] and model.schedule.refine_noise_timestep == 101
    (opt,), _ = model.configure_optimizers()
    assert type(opt) is torch.optim.AdamW and all(g["eps"] == ADAM_EPS["midms"] for g in opt.param_groups)


@pytest.mark.parametrize("dataset", ["celebahq", "lsun_church", "ade20k", "deepfashion"])
def test_the_cocosnet_module_built_from_a_preset_uses_the_official_weights_and_optimisers(dataset):
    cfg = _compose(f"dataset={dataset}", "model=cocosnet")
    small = {"ngf": 8, "ndf": 8, "match_channels": 16, "spade_hidden": 8, "vgg_weights": "random"}
    model = hydra.utils.instantiate(OmegaConf.merge(cfg.model.module, small), data_spec=SPEC[dataset])
    for key, value in {**COCOSNET_SETTINGS[dataset], **COCOSNET_LOSS_WEIGHTS}.items():
        assert model.settings[key] == value, key
    if dataset in COCOSNET_MASK_IGNORE:
        assert model.settings["mask_ignore_index"] == COCOSNET_MASK_IGNORE[dataset]
    assert model.corr.match_kernel == 3  # base_options.py --match_kernel 3 (the unfold window of the matching)
    (opt_g, opt_d), _ = model.configure_optimizers()
    assert all(g["lr"] == pytest.approx(1e-4) for g in opt_g.param_groups)  # generator + correspondence: lr / 2
    assert all(g["lr"] == pytest.approx(4e-4) for g in opt_d.param_groups)  # discriminator: lr * 2
    assert all(g["betas"] == COCOSNET_BETAS for opt in (opt_g, opt_d) for g in opt.param_groups)
    assert all(g["eps"] == ADAM_EPS["cocosnet_g"] for g in opt_g.param_groups)
    assert all(g["eps"] == ADAM_EPS["cocosnet_d"] for g in opt_d.param_groups)


@pytest.mark.parametrize("dataset", ["celebahq", "lsun_church"])
def test_the_spade_module_built_from_a_preset_uses_the_official_weights_and_optimisers(dataset):
    cfg = _compose(f"dataset={dataset}", "model=spade")
    small = {"ngf": 4, "ndf": 4, "spade_hidden": 4, "encoder_size": 64, "vgg_weights": "random"}
    model = hydra.utils.instantiate(OmegaConf.merge(cfg.model.module, small), data_spec=SPEC[dataset])
    for key, value in SPADE_LOSS_WEIGHTS.items():
        assert model.settings[key] == value, key
    assert model.settings["reconstruction_target"] == "image"  # the input's own photo, as the released training
    (opt_g, opt_d), _ = model.configure_optimizers()
    assert all(g["lr"] == pytest.approx(1e-4) for g in opt_g.param_groups)  # generator + encoder: lr / 2
    assert all(g["lr"] == pytest.approx(4e-4) for g in opt_d.param_groups)  # discriminator: lr * 2
    assert all(g["betas"] == COCOSNET_BETAS for opt in (opt_g, opt_d) for g in opt.param_groups)  # the same rule
    assert all(g["eps"] == ADAM_EPS["spade"] for opt in (opt_g, opt_d) for g in opt.param_groups)


@pytest.mark.parametrize(
    ("dataset", "controlnet"),
    [("celebahq", "lllyasviel/sd-controlnet-canny"), ("lsun_church", "lllyasviel/sd-controlnet-seg")],
)
def test_the_training_free_row_composes_its_controlnet_and_the_papers_evaluation(dataset, controlnet):
    cfg = _compose(f"dataset={dataset}", "model=controlnet_ipadapter")
    OmegaConf.resolve(cfg)
    assert cfg.preset.name == f"{dataset}_controlnet_ipadapter" and cfg.model.module.dtype == "float16"
    assert cfg.model.hub_ids.controlnet == controlnet and cfg.model.module.control == (
        "edges" if dataset == "celebahq" else "ade20k"
    )
    assert Path(cfg.model.module.controlnet).name == controlnet.replace("/", "--")
    _check(cfg, {k: v for k, v in COMMON.items() if k.startswith(("evaluation", "metrics", "dataset.image_size"))})


def test_the_swd_metric_has_progressive_gans_constants():
    swd = hydra.utils.instantiate(_compose("dataset=celebahq", "model=midms").metrics.swd)
    # sliced_wasserstein.py API: nhood_size 7, nhoods_per_image 128, dir_repeats 4, dirs_per_repeat 128,
    # and the Laplacian pyramid down to 16 px
    assert (swd.patch_size, swd.patches_per_image, swd.repeats, swd.directions) == (7, 128, 4, 128)
    assert swd.min_resolution == 16


def test_the_synthetic_quickstart_has_no_preset_and_a_preset_can_be_dropped():
    quick = _compose()
    assert quick.get("preset") is None and quick.model.size == "tiny" and quick.trainer.accelerator == "cpu"
    dropped = _compose("dataset=celebahq", "model=midms", "~preset")
    assert dropped.get("preset") is None and dropped.model.size == "tiny"
    assert _compose("dataset=celebahq", "model=copy_exemplar").get("preset") is None  # nothing to set


def _create_everything_named(cfg) -> None:
    """Every file and folder the preset names, empty, as a complete installation would have them."""
    for req in requirements(cfg):
        path = Path(req.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix:
            path.touch()
        else:
            path.mkdir(exist_ok=True)


@pytest.mark.parametrize("dataset", ["celebahq", "lsun_church"])
@pytest.mark.parametrize("model", ["midms", "cocosnet", "spade", "controlnet_ipadapter"])
def test_a_preset_names_everything_missing_in_one_message(tmp_path, monkeypatch, dataset, model):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    paths = [f"paths.data_dir={tmp_path / 'data'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    cfg = _compose(f"dataset={dataset}", f"model={model}", *paths)
    problems = {"fid": "Inception weights missing: put it there", "lpips": "AlexNet missing"}
    with pytest.raises(UserError) as info:
        check_preset(cfg, lambda: problems)
    message = str(info.value)
    assert "a CUDA GPU" in message and f"conf/preset/{dataset}_{model}.yaml" in message and "~preset" in message
    for req in requirements(cfg):
        assert req.path in message and not req.present
    loss_weights = {"spade": TORCHVISION_VGG, "controlnet_ipadapter": "ip-adapter_sd15.safetensors"}
    assert loss_weights.get(model, CAFFE_VGG) in message
    assert "for the metric(s) fid: Inception weights missing" in message
    assert "lpips" not in message  # not one of the papers' metrics: it does not stop the run
    assert "\n" not in message  # one paragraph

    _create_everything_named(cfg)
    (only,) = missing_requirements(cfg, dict)
    assert only.startswith("a CUDA GPU")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert missing_requirements(cfg, dict) == []
    check_preset(cfg, dict)  # everything here: nothing raised
    cpu = _compose(f"dataset={dataset}", f"model={model}", *paths, "trainer.accelerator=cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert missing_requirements(cpu, dict) == []  # a deliberate CPU run does not need a GPU


def test_an_evaluation_only_run_does_not_need_the_training_list(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    paths = [f"paths.data_dir={tmp_path / 'data'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    cfg = _compose("dataset=celebahq", "model=cocosnet", *paths)
    _create_everything_named(cfg)
    (tmp_path / "data" / "celebahq" / "celebahq_ref.txt").unlink()
    (only,) = missing_requirements(cfg)
    assert "celebahq_ref.txt" in only
    assert missing_requirements(_compose("dataset=celebahq", "model=cocosnet", *paths, "train=false")) == []
    released = _compose("dataset=celebahq", "model=cocosnet", *paths, "train=false", f"model.pretrained={tmp_path}/r")
    assert [m.split(" at ")[1].split(" (")[0] for m in missing_requirements(released)] == [
        f"{tmp_path}/r/latest_net_Corr.pth",
        f"{tmp_path}/r/latest_net_G.pth",
    ]


def test_the_headline_sweep_on_a_cpu_stops_before_training_with_the_list(run_entry, tmp_path):
    proc = run_entry("-m", "model=midms,cocosnet", "dataset=celebahq", "logger=none", timeout=300)
    from midms.record import RunRecord

    records = [RunRecord.read(p) for p in sorted((tmp_path / "logs").rglob("results.json"))]
    assert len(records) == 2 and proc.returncode == 1
    for record in records:
        assert record.status == "failed" and record.train is None
        assert "a CUDA GPU" in record.error and CAFFE_VGG in record.error and "celebahq_ref_test.txt" in record.error
        assert not (Path(record.run_dir) / "checkpoints").exists()
    midms_error = next(r.error for r in records if r.model == "midms")
    assert "ldm-celebahq-256" in midms_error


@pytest.mark.parametrize("model", ["cocosnet", "spade"])
def test_evaluating_released_weights_needs_no_loss_network(tmp_path, monkeypatch, model):
    """train=false: the training losses' VGG19 is neither built (model.module.vgg_weights is null) nor asked for;
    the metrics' Caffe VGG19 still is."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    paths = [f"paths.data_dir={tmp_path / 'data'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    training = _compose("dataset=celebahq", f"model={model}", *paths)
    _create_everything_named(training)
    loss_vgg = Path(training.model.module.vgg_weights)
    assert loss_vgg.name == {"cocosnet": CAFFE_VGG, "spade": TORCHVISION_VGG}[model]
    loss_vgg.unlink()
    assert [m for m in missing_requirements(training) if str(loss_vgg) in m]
    evaluating = _compose("dataset=celebahq", f"model={model}", *paths, "train=false")
    assert evaluating.model.module.vgg_weights is None
    names = [r.name for r in requirements(evaluating)]
    assert "metrics_vgg19" in names and not {"vgg19", "vgg19_conv"} & set(names)
    if model == "spade":  # its losses' VGG19 is another file than the metrics'
        assert missing_requirements(evaluating) == []


def test_the_ade20k_cocosnet_preset_is_the_readme_command():
    cfg = _compose("dataset=ade20k", "model=cocosnet")
    OmegaConf.resolve(cfg)
    assert cfg.preset.name == "ade20k_cocosnet"
    _check(cfg, COMMON)
    _check(cfg, COCOSNET)
    assert cfg.trainer.max_epochs == COCOSNET_EPOCHS["ade20k"] and Path(cfg.model.module.vgg_weights).name == CAFFE_VGG
    for key, value in COCOSNET_SETTINGS["ade20k"].items():
        assert cfg.model.module.settings[key] == value, key
    names = {r.name: Path(r.path).name for r in requirements(cfg)}
    assert names["test_pairs"] == "ade20k_ref_test.txt" and names["train_pairs"] == "ade20k_ref.txt"
    evaluating = _compose("dataset=ade20k", "model=cocosnet", "train=false")
    needed = {r.name for r in requirements(evaluating)}
    assert {"train_pairs", "vgg19_conv"}.isdisjoint(needed)
    assert "train_photos" in needed  # the test exemplars are training photos (the official test code's lookup)


def test_the_deepfashion_cocosnet_preset_is_the_readme_command():
    cfg = _compose("dataset=deepfashion", "model=cocosnet")
    OmegaConf.resolve(cfg)
    assert cfg.preset.name == "deepfashion_cocosnet"
    _check(cfg, {k: v for k, v in COMMON.items() if "reference_probability" not in k})
    _check(cfg, {**COCOSNET, **DEEPFASHION_DATA})
    assert cfg.trainer.max_epochs == COCOSNET_EPOCHS["deepfashion"]
    assert Path(cfg.model.module.vgg_weights).name == CAFFE_VGG
    for key, value in COCOSNET_SETTINGS["deepfashion"].items():
        assert cfg.model.module.settings[key] == value, key
    names = {r.name: Path(r.path).name for r in requirements(cfg)}
    assert names["test_pairs"] == "deepfashion_ref_test.txt" and names["self_pairs"] == "deepfashion_self_pair.txt"
    assert names["poses"] == "pose" and names["test_list"] == "val.txt"
    evaluating = _compose("dataset=deepfashion", "model=cocosnet", "train=false")
    assert {"train_pairs", "train_list", "vgg19_conv"}.isdisjoint(r.name for r in requirements(evaluating))


DYNAST_DEEPFASHION = {  # Huage001/DynaST train_deepfashion.sh, test_deepfashion.sh and generator.py's defaults
    "model.size": "paper",
    "model.module.ngf": 64,  # --ngf 64
    "model.module.max_multi": 8,  # --max_multi 8
    "model.module.n_layers": 2,  # --n_layers 2 (the option's default is 3)
    "model.module.top_k": 4,  # --top_k default
    "model.module.smooth": 0.01,  # --smooth default
    "model.module.pos_dim": 16,  # --pos_dim default
    "model.module.prune_dim": 16,  # --prune_dim default
    "model.module.lr": 1e-4,  # --lr 0.0001
    "model.module.settings.niter": 80,  # --niter 80
    "model.module.settings.niter_decay": 20,  # --niter_decay 20
    "model.module.settings.weight_warp_self": 1000.0,  # --weight_warp_self 1000.0
    "model.module.settings.which_perceptual": "relu4_2",  # --which_perceptual 4_2
    "model.module.settings.weight_perceptual": 0.001,  # --weight_perceptual 0.001
    "model.module.settings.fm_reference_batch": 5,  # --batchSize 40 over --gpu_ids 0,...,7
    "trainer.max_epochs": 100,  # 80 + 20
    "trainer.precision": "16-mixed",  # --amp
    "dataset.datamodule.batch_size": 40,  # --batchSize 40
    "dataset.image_size": 256,  # --crop_size 256
    "dataset.load_size": 256,  # --load_size 256: no random crop
    "dataset.flip": False,  # --no_flip
    "dataset.video_like": True,  # --video_like
    "dataset.same_garment_check": False,  # data/pix2pix_dataset.py: the listed view, no folder test
    "dataset.real_reference_probability": 0.0,  # --real_reference_probability 0.0
}


def test_the_deepfashion_dynast_preset_is_the_released_commands():
    cfg = _compose("dataset=deepfashion", "model=dynast")
    OmegaConf.resolve(cfg)
    assert cfg.preset.name == "deepfashion_dynast"
    _check(cfg, DYNAST_DEEPFASHION)
    assert Path(cfg.model.module.vgg_weights).name == CAFFE_VGG  # --vgg_path vgg/vgg19_conv.pth
    small = {"ngf": 4, "ndf": 4, "pos_dim": 2, "prune_dim": 2, "vgg_weights": "random", "vgg_widths": [4, 4, 8, 8, 8]}
    model = hydra.utils.instantiate(OmegaConf.merge(cfg.model.module, small), data_spec=SPEC["deepfashion"])
    (opt_g, opt_d), _ = model.configure_optimizers()  # pix2pix_model.py create_optimizers: TTUR, Adam (0, 0.9)
    assert opt_g.param_groups[0]["lr"] == pytest.approx(5e-5) and opt_d.param_groups[0]["lr"] == pytest.approx(2e-4)
    assert opt_g.defaults["betas"] == opt_d.defaults["betas"] == (0.0, 0.9) and opt_g.defaults["eps"] == 1e-3
    names = {r.name: Path(r.path).name for r in requirements(cfg)}
    assert names["self_pairs"] == "deepfashion_self_pair.txt" and names["vgg19_conv"] == CAFFE_VGG
    released = _compose("dataset=deepfashion", "model=dynast", "train=false", "model.pretrained=/weights/dynast")
    needed = {r.name: r.path for r in requirements(released)}
    assert needed["released_generator"] == "/weights/dynast/latest_net_G.pth" and "vgg19_conv" not in needed


MATEBIT_CELEBAHQ = {  # AiArt-Gao/MATEBIT README (the celebahqedge train and test commands) and options/
    "model.size": "paper",
    "model.module.ngf": 64,  # --ngf's default
    "model.module.n_layers": 3,  # --n_layers's default (not passed)
    "model.module.memory_slots": 1024,  # generator_celebahqedge.py MemoryNetwork(num=1024)
    "model.module.lr": 2e-4,  # --lr's default
    "model.module.settings.niter": 30,  # --niter 30
    "model.module.settings.niter_decay": 30,  # --niter_decay 30
    "model.module.settings.style_weight": 0.1,  # --style_weight 0.1
    "model.module.settings.weight_warp_self": 1000.0,  # --weight_warp_self 1000.0
    "model.module.settings.weight_perceptual": 0.001,  # --weight_perceptual 0.001
    "model.module.settings.which_perceptual": "relu4_2",  # --which_perceptual's default 4_2
    "model.module.settings.fm_reference_batch": 4,  # --batchSize 4 --gpu_ids 0
    "model.module.settings.attention": True,  # --use_atten (training)
    "model.module.settings.attention_at_test": False,  # the test command has no --use_atten
    "trainer.max_epochs": 60,
    "trainer.precision": "16-mixed",  # --amp
    "dataset.datamodule.batch_size": 4,
    "dataset.image_size": 256,  # --crop_size 256
    "dataset.load_size": 286,  # --load_size 286 (training)
    "dataset.reference_rule": "matebit",  # pix2pix_dataset.py: hard = val[0], easy = val[1]; test: val[1]
    "dataset.real_reference_probability": 0.7,  # train_options.py --real_reference_probability
    "dataset.hard_reference_probability": 0.3,  # train_options.py --hard_reference_probability
}
MATEBIT_LOSS_WEIGHTS = {"weight_contextual": 1.0, "weight_novgg_featpair": 10.0, "weight_vgg": 10.0}  # train_options.py


def test_the_celebahq_matebit_preset_is_the_readme_commands():
    cfg = _compose("dataset=celebahq", "model=matebit")
    OmegaConf.resolve(cfg)
    assert cfg.preset.name == "celebahq_matebit"
    _check(cfg, MATEBIT_CELEBAHQ)
    assert Path(cfg.model.module.vgg_weights).name == CAFFE_VGG  # pix2pix_model.py: vgg/vgg19_conv.pth
    small = {"ngf": 4, "ndf": 4, "pos_dim": 2, "prune_dim": 2, "memory_slots": 8, "vgg_weights": "random",
             "vgg_widths": [4, 4, 8, 8, 8]}  # fmt: skip
    model = hydra.utils.instantiate(OmegaConf.merge(cfg.model.module, small), data_spec=SPEC["celebahq"])
    for key, value in MATEBIT_LOSS_WEIGHTS.items():
        assert model.settings[key] == value, key
    (opt_g, opt_d), _ = model.configure_optimizers()  # pix2pix_model.py create_optimizers: TTUR, Adam (0, 0.9)
    assert opt_g.param_groups[0]["lr"] == pytest.approx(1e-4) and opt_d.param_groups[0]["lr"] == pytest.approx(4e-4)
    released = _compose("dataset=celebahq", "model=matebit", "train=false", "model.pretrained=/weights/matebit")
    needed = {r.name: r.path for r in requirements(released)}
    assert needed["released_generator"] == "/weights/matebit/latest_net_G.pth" and "vgg19_conv" not in needed


COCOSNET_V2_DEEPFASHION_HD = {  # microsoft/CoCosNet-v2 README (DeepFashion-HD train and test commands), options/
    "model.size": "paper",
    "model.module.nef": 32,  # --nef 32
    "model.module.ngf": 64,  # --ngf's default
    "model.module.temperature": 0.01,  # --temperature 0.01
    "model.module.iterations": 5,  # --iteration_count 5
    "model.module.gru_hidden": 32,  # patch_match.py hidden_dim = 32
    "model.module.gru_motion": 64,  # convgru.py SepConvGRU input_dim=64
    "model.module.spade_hidden": 128,  # normalization.py nhidden = 128
    "model.module.lr": 1e-4,  # --lr 0.0001
    "model.module.settings.niter": 100,  # --niter 100
    "model.module.settings.niter_decay": 0,  # --niter_decay 0
    "model.module.settings.weight_warp_self": 500.0,  # --weight_warp_self 500.0
    "model.module.settings.weight_warp_cycle": 1.0,  # --weight_warp_cycle 1.0
    "model.module.settings.weight_perceptual": 0.001,  # --weight_perceptual 0.001
    "model.module.settings.which_perceptual": "relu4_2",  # --which_perceptual 4_2
    "model.module.settings.fm_reference_batch": 2,  # --batchSize 16 over 8 GPUs
    "trainer.max_epochs": 100,
    "trainer.precision": "16-mixed",  # --amp
    "dataset.datamodule.batch_size": 16,
    "dataset.image_size": 512,  # --crop_size 512
    "dataset.load_size": 550,  # --load_size 550 (training)
    "dataset.flip": False,  # --no_flip
    "dataset.video_like": True,  # --video_like (training)
    "dataset.eval_video_like": False,  # the test command has no --video_like
    "dataset.same_garment_check": False,  # data/pix2pix_dataset.py: the listed view, no folder test
    "dataset.real_reference_probability": 0.0,
    "dataset.pose_canvas": 1024,  # deepfashionHD_dataset.py: np.zeros((1024, 1024, 3))
    "dataset.pose_radius": 20,  # cycle_radius = 20
    "dataset.pose_stick": 20,  # stickwidth = 20
}


def test_the_deepfashion_cocosnet_v2_preset_is_the_readme_commands():
    cfg = _compose("dataset=deepfashion", "model=cocosnet_v2")
    OmegaConf.resolve(cfg)
    assert cfg.preset.name == "deepfashion_cocosnet_v2" and cfg.dataset.root.endswith("deepfashionHD")
    _check(cfg, COCOSNET_V2_DEEPFASHION_HD)
    assert Path(cfg.model.module.vgg_weights).name == CAFFE_VGG
    small = {"nef": 4, "ngf": 4, "ndf": 4, "gru_hidden": 8, "gru_motion": 40, "spade_hidden": 8,
             "vgg_weights": "random", "vgg_widths": [4, 4, 8, 8, 8]}  # fmt: skip
    model = hydra.utils.instantiate(OmegaConf.merge(cfg.model.module, small), data_spec=SPEC["deepfashion"])
    assert model.settings["weight_novgg_featpair"] == 10.0 and model.settings["weight_contextual"] == 1.0
    (opt_g, opt_d), _ = model.configure_optimizers()  # pix2pix_model.py create_optimizers: TTUR, Adam (0, 0.9)
    assert opt_g.param_groups[0]["lr"] == pytest.approx(5e-5) and opt_d.param_groups[0]["lr"] == pytest.approx(2e-4)
    released = _compose("dataset=deepfashion", "model=cocosnet_v2", "train=false", "model.pretrained=/w/v2")
    needed = {r.name: r.path for r in requirements(released)}
    assert needed["released_corr"] == "/w/v2/latest_net_Corr.pth" and "self_pairs" not in needed


UNITE_ADE20K = {  # fnzhan/UNITE train_ade.sh / test_ade.sh, options/, data/ade20k_dataset.py
    "model.size": "paper",
    "model.module.ngf": 64,  # generator.py: nf = 64, ndf = 64 (fixed)
    "model.module.match_channels": 256,  # correspondence.py: self.cor_dim = 256
    "model.module.spade_hidden": 128,  # normalization.py: nhidden = 128
    "model.module.lr": 2e-4,  # --lr's default
    "model.module.settings.maskmix": True,  # --maskmix
    "model.module.settings.use_coordconv": True,  # --use_coordconv
    "model.module.settings.adaptor_nonlocal": True,  # --adaptor_nonlocal
    "model.module.settings.warp_mask_losstype": "direct",  # --warp_mask_losstype direct
    "model.module.settings.vgg_normal_correct": False,  # not passed
    "model.module.settings.warp_cycle_w": 0.0,  # not passed (default 0)
    "model.module.settings.ctx_w": 1.0,  # --ctx_w 1.0
    "model.module.settings.fm_ratio": 0.1,  # --fm_ratio's default
    "model.module.settings.which_perceptual": "relu5_2",  # --which_perceptual's default 5_2
    "model.module.settings.weight_perceptual": 0.01,  # --weight_perceptual's default
    "model.module.settings.niter": 150,  # --niter 150
    "model.module.settings.niter_decay": 150,  # --niter_decay 150
    "model.module.settings.fm_reference_batch": 3,  # --batchSize 3 --gpu_ids 0
    "trainer.max_epochs": 300,
    "trainer.precision": "32-true",  # no --amp / apex
    "dataset.datamodule.batch_size": 3,
    "dataset.image_size": 256,  # crop_size 256
    "dataset.load_size": 286,  # load_size 286 when is_train
}


def test_the_ade20k_unite_preset_is_the_released_commands():
    cfg = _compose("dataset=ade20k", "model=unite")
    OmegaConf.resolve(cfg)
    assert cfg.preset.name == "ade20k_unite"
    _check(cfg, UNITE_ADE20K)
    assert Path(cfg.model.module.vgg_weights).name == CAFFE_VGG  # README: models/vgg19_conv.pth
    small = {"ngf": 4, "ndf": 4, "match_channels": 8, "spade_hidden": 8, "vgg_weights": "random",
             "vgg_widths": [4, 4, 8, 8, 8]}  # fmt: skip
    model = hydra.utils.instantiate(OmegaConf.merge(cfg.model.module, small), data_spec=SPEC["ade20k"])
    assert model.settings["novgg_featpair"] == 10.0 and model.settings["weight_gan"] == 10.0  # train_options.py
    (opt_g, opt_d), _ = model.configure_optimizers()  # pix2pix_model.py create_optimizers: TTUR, Adam (0, 0.9)
    assert opt_g.param_groups[0]["lr"] == pytest.approx(1e-4) and opt_d.param_groups[0]["lr"] == pytest.approx(4e-4)
    assert opt_g.defaults["betas"] == opt_d.defaults["betas"] == (0.0, 0.9) and opt_g.defaults["eps"] == 1e-3
    church = _compose("dataset=lsun_church", "model=unite", "~preset")
    assert church.model.settings == _compose("dataset=ade20k", "model=unite", "~preset").model.settings
    released = _compose("dataset=ade20k", "model=unite", "train=false", "model.pretrained=/weights/unite")
    needed = {r.name: r.path for r in requirements(released)}
    assert needed["released_corr"] == "/weights/unite/latest_net_Corr.pth" and "vgg19_conv" not in needed


UNITE_COMMANDS = {  # fnzhan/UNITE train_face.sh, train_deepfashion.sh (one GPU each), options/, data/*_dataset.py
    "celebahq": {
        "preset.name": "celebahq_unite",
        "model.module.settings.warp_bilinear": True,  # --warp_bilinear
        "model.module.settings.warp_cycle_w": 1.0,  # --warp_cycle_w 1
        "model.module.settings.maskmix": True,  # --maskmix
        "model.module.settings.use_coordconv": False,  # not passed
        "model.module.settings.vgg_normal_correct": True,  # --vgg_normal_correct
        "model.module.settings.which_perceptual": "relu4_2",  # --which_perceptual 4_2
        "model.module.settings.weight_perceptual": 0.001,  # --weight_perceptual 0.001
        "model.module.settings.fm_ratio": 1.0,  # --fm_ratio 1.0
        "model.module.settings.fm_reference_batch": 4,  # --batchSize 4, one GPU
        "dataset.datamodule.batch_size": 4,
        "trainer.max_epochs": 60,  # --niter 30 --niter_decay 30
        "dataset.load_size": 286,  # celebahqedge_dataset.py: load_size 286 when is_train
    },
    "deepfashion": {
        "preset.name": "deepfashion_unite",
        "model.module.settings.maskmix": False,  # no --maskmix
        "model.module.settings.warp_patch": False,  # no --warp_patch
        "model.module.settings.warp_self_w": 100.0,  # --warp_self_w 100
        "model.module.settings.warp_bilinear": True,  # --warp_bilinear
        "model.module.settings.vgg_normal_correct": True,  # --vgg_normal_correct
        "model.module.settings.fm_reference_batch": 2,  # --batchSize 2, one GPU
        "dataset.datamodule.batch_size": 2,
        "dataset.flip": False,  # --no_flip
        "dataset.video_like": True,  # --video_like
        "dataset.real_reference_probability": 0.0,  # --real_reference_probability 0.0
        "trainer.max_epochs": 100,  # --niter 50 --niter_decay 50
    },
}


@pytest.mark.parametrize("dataset", list(UNITE_COMMANDS))
def test_the_unite_presets_without_released_models_are_its_training_commands(dataset):
    cfg = _compose(f"dataset={dataset}", "model=unite")
    OmegaConf.resolve(cfg)
    _check(cfg, UNITE_COMMANDS[dataset])
    assert cfg.trainer.precision == "32-true" and cfg.model.size == "paper"  # no --amp
    assert "released_corr" not in cfg.preset.requires  # UNITE released only its ADE20K model


# the rows beside CoCosNet on the field's other datasets: each value with its source
OTHER_ROWS = {
    ("ade20k", "spade"): {  # NVlabs/SPADE data/ade20k_dataset.py; the CoCosNet ADE20K command's epochs beside it
        "dataset.load_size": 286,  # load_size 286 when is_train, crop_size 256
        "dataset.image_size": 256,
        "model.settings.niter": 100,
        "model.settings.niter_decay": 100,
        "trainer.max_epochs": 200,
        "model.module.use_vae": True,  # the exemplar-based row: --use_vae
    },
    ("ade20k", "midms"): {  # cvlab-kaist/MIDMs train.py defaults
        "trainer.max_epochs": 4,  # --epochs 4
        "dataset.datamodule.batch_size": 8,  # --batch-size 1 per process on 8 GPUs
        "model.module.training.lr": 3e-6,  # --lr
    },
    ("ade20k", "controlnet_ipadapter"): {
        "model.control.hub_id": "lllyasviel/sd-controlnet-seg",
        "model.control.drawing": "ade20k",
    },  # fmt: skip
    ("deepfashion", "spade"): {  # the CoCosNet DeepFashion row's schedule and data beside it
        "model.settings.niter": 50,
        "model.settings.niter_decay": 50,
        "trainer.max_epochs": 100,
        "dataset.flip": False,  # CoCosNet's README: --no_flip
    },
    ("deepfashion", "midms"): {  # cvlab-kaist/MIDMs data/deepfashion_dataset.py and train.py
        "dataset.load_size": 256,  # set_defaults(load_size=256) in training too
        "dataset.image_size": 256,  # crop_size 256
        "dataset.flip": True,  # train.py: --no_flip unset
        "dataset.video_like": False,  # get_ref: the video-like rule is disabled (get_ref_vgg)
        "dataset.real_reference_probability": 0.7,  # train.py --real_reference_probability 0.7
        "dataset.hard_reference_probability": 0.2,  # --hard_reference_probability 0.2
        "trainer.max_epochs": 4,
    },
    ("deepfashion", "controlnet_ipadapter"): {
        "model.control.hub_id": "lllyasviel/sd-controlnet-openpose",
        "model.control.drawing": "pose",
    },  # fmt: skip
}


@pytest.mark.parametrize(("dataset", "model"), list(OTHER_ROWS))
def test_the_other_datasets_rows_compose_their_settings_and_requirements(dataset, model):
    cfg = _compose(f"dataset={dataset}", f"model={model}")
    OmegaConf.resolve(cfg)
    assert cfg.preset.name == f"{dataset}_{model}"
    _check(cfg, OTHER_ROWS[(dataset, model)])
    _check(cfg, {"evaluation.image_format": "jpg", "metrics.fid.mode": "legacy_pytorch"})
    for metric in ("semantic", "style"):
        assert Path(cfg.metrics[metric].weights).name == CAFFE_VGG
    names = {r.name: Path(r.path).name for r in requirements(cfg)}
    pairs = {"ade20k": "ade20k_ref_test.txt", "deepfashion": "deepfashion_ref_test.txt"}[dataset]
    assert names["test_pairs"] == pairs
    for req in requirements(cfg):  # every source stands on its own or names a file listed beside it
        standing = not req.source.startswith("as ") or req.source[3:].split()[0] in {"latest_net_Corr.pth", "the"}
        assert req.source and standing, (req.name, req.source)


def test_the_midms_row_on_deepfashion_takes_its_readers_losses():
    """utils_training/optimize.py's DeepFashion branch: which_perceptual -2 (relu4_2), weight_perceptual 0.002,
    weight_mask 0."""
    cfg = _compose("dataset=deepfashion", "model=midms")
    tiny = _compose("model=midms").model.sizes.tiny
    module_cfg = OmegaConf.merge(cfg.model.module, {"matching": tiny.matching, "vgg": tiny.vgg})
    module_cfg.prior = tiny.prior
    model = hydra.utils.instantiate(module_cfg, data_spec=SPEC["deepfashion"])
    assert (model.perc_layer, model.perc_weight, model.seg_weight) == ("relu4_2", pytest.approx(0.002), 0.0)
