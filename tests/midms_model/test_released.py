"""MIDMs' released checkpoint loads strictly: the fine-tuned LDM becomes the prior, the matching networks fill
the paper-size :class:`MatchingNetwork` from the official names.

``tests/support/midms_released_layout.json`` lists the official matching networks' tensor names and shapes (facts
read from cvlab-kaist/MIDMs ``models/midms.py`` and ``models/generator.py``); the LDM part is a small CompVis layout
(the full-size CelebA-HQ LDM conversion is tested in ``test_prior.py``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import hydra
import pytest
import torch
import yaml
from compvis_layout import CONFIG, compvis_unet, compvis_vq
from hydra import compose, initialize_config_dir

from midms.data.contract import DataSpec
from midms.errors import UserError

CONF = Path(__file__).resolve().parents[2] / "conf"
LAYOUT = json.loads((Path(__file__).resolve().parents[1] / "support" / "midms_released_layout.json").read_text())
OFFICIAL = LAYOUT["celebahqedge"]
SPEC = DataSpec(semantic_nc=15, image_size=64, num_classes=19, has_target=False)

# where some official tensors land: the correspondence checked numerically against the official modules (the same
# random weights: real_enc, seg_enc, iter_enc and trunk + phi outputs identical to the last bit)
LANDS_AT = {
    "real_enc.G_middle_1.conv_s.weight_orig": ["real_enc.block.conv_s.parametrizations.weight.original"],
    "seg_enc.layer2.0.weight_v": ["seg_enc.layer2.0.parametrizations.weight.0._v"],
    "iter_enc.G_middle_1.norm_0.mlp_gamma.weight": ["iter_enc.block.norm_0.gamma.weight"],
    "layer.2.prelu.weight": ["trunk.2.body.3.weight", "trunk.2.act.weight"],
    "theta.weight": ["theta.weight"],
}


def official_matching() -> dict[str, torch.Tensor]:
    """The matching networks in the official layout, at full size; each tensor filled with its own index."""
    return {name: torch.full(shape, float(i)) for i, (name, shape) in enumerate(OFFICIAL.items())}


# What cvlab-kaist/MIDMs' train.py saves besides the networks: ``models/midms.py`` keeps ``self.diffusion_sampler =
# DDIMSampler(self.diff_model)``, an nn.Module (``models/diffusion/ddim.py``), so ``state_dict()`` holds every
# ``diff_model.`` tensor a second time under ``diffusion_sampler.model.``, and the buffers its ``make_schedule``
# registers (names read from ddim.py; a snapshot of the official model at paper size has 955 + 968 such keys)
SAMPLER_BUFFERS = ["betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                   "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                   "sqrt_recipm1_alphas_cumprod", "ddim_sigmas", "ddim_alphas", "ddim_alphas_prev",
                   "ddim_sqrt_one_minus_alphas", "ddim_sigmas_for_original_num_steps"]  # fmt: skip
#: LatentDiffusion's own schedule buffers (ldm ``ddpm.py`` ``register_schedule``), also in ``diff_model.``
LDM_BUFFERS = ["betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
               "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
               "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1",
               "posterior_mean_coef2"]  # fmt: skip


def official_state(matching: dict | None = None, ldm: bool = True) -> dict[str, torch.Tensor]:
    """The state dict of the official module as train.py saves it (``model.module.state_dict()``)."""
    torch.manual_seed(0)
    diff = {**compvis_unet(ch=32), **compvis_vq()}
    diff.update({name: torch.rand(1000) for name in LDM_BUFFERS})
    state = {f"diff_model.{k}": v for k, v in diff.items()} if ldm else {}
    if ldm:
        state.update({f"diffusion_sampler.model.{k}": v for k, v in diff.items()})  # the same tensors again
        sampler = {name: torch.rand(16) for name in SAMPLER_BUFFERS}
        sampler.update({name: diff[name].clone() for name in ("betas", "alphas_cumprod", "alphas_cumprod_prev")})
        state.update({f"diffusion_sampler.{k}": v for k, v in sampler.items()})
    state.update(official_matching() if matching is None else matching)
    return state


def write_release(folder: Path, matching: dict | None = None, ldm: bool = True, state: dict | None = None) -> Path:
    """``midms_celebA_finetuned.pth`` (a train.py snapshot) and ``pretrained/config.yaml``, as the README lays out."""
    state = official_state(matching, ldm) if state is None else state
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=3e-6, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[10, 12, 14, 24], gamma=0.3)  # its Counter too
    path = folder / "midms_celebA_finetuned.pth"
    snapshot = {"epoch": 4, "state_dict": state, "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    torch.save({**snapshot, "best_loss": 0}, path)
    (folder / "pretrained").mkdir(exist_ok=True)
    (folder / "pretrained" / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    return path


def build(path: Path, *extra: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", ["paths.output_dir=/tmp/unused", "dataset=celebahq", "model=midms", "train=false",
                                 f"model.pretrained={path}", *extra])  # fmt: skip
    return hydra.utils.instantiate(cfg.model.module, data_spec=SPEC)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_release_fills_the_matching_networks_and_brings_its_prior(tmp_path):
    path = write_release(tmp_path)
    model = build(path)
    own = model.net.state_dict()
    names = list(OFFICIAL)
    assert {float(v.flatten()[0]) for v in own.values()} == {float(i) for i in range(len(names))}
    for official, ours in LANDS_AT.items():
        for name in ours:
            assert torch.all(own[name] == names.index(official)), (official, name)
    file_state = torch.load(path, weights_only=True)["state_dict"]
    unet_in = file_state["diff_model.model.diffusion_model.input_blocks.0.0.weight"]
    assert torch.equal(model.prior.unet.state_dict()["conv_in.weight"], unet_in)  # the release's (fine-tuned) UNet
    assert model.prior.scheduler().config.beta_end == pytest.approx(CONFIG["model"]["params"]["linear_end"])
    assert model.protocol["pretrained"] == {
        "file": str(path),
        "midms_celebA_finetuned.pth": sha256(path),
        "config.yaml": sha256(tmp_path / "pretrained" / "config.yaml"),
    }
    batch = {
        "semantics": torch.rand(1, 15, 64, 64),
        "exemplar": torch.rand(1, 3, 64, 64) * 2 - 1,
        "exemplar_semantics": torch.rand(1, 15, 64, 64),
    }
    model.net.load_state_dict({k: torch.randn_like(v) * 0.02 for k, v in own.items()})
    assert model.translate(batch).shape == (1, 3, 64, 64)  # the loaded model translates


@pytest.mark.parametrize("fault", ["missing", "extra", "shape"])
def test_a_corrupted_release_is_an_error_naming_the_tensor(tmp_path, fault):
    matching = official_matching()
    name = "iter_enc.G_middle_1.conv_1.weight_orig"
    if fault == "missing":
        del matching[name]
    elif fault == "extra":
        matching["iter_enc.G_middle_2.conv_1.bias"] = torch.zeros(3)
    else:
        matching[name] = torch.zeros(5, 5)
    path = write_release(tmp_path, matching)
    with pytest.raises(Exception) as info:
        build(path)
    message = str(info.value)
    wanted = {"missing": "missing from the file", "extra": "does not have", "shape": "another shape"}[fault]
    assert wanted in message and "iter_enc." in message and "midms_celebA_finetuned.pth" in message
    if fault != "extra":  # named as the file names it, and as this suite does
        assert f"{name} (here iter_enc.block.conv_1.parametrizations.weight.original)" in message


def test_a_file_that_is_not_a_midms_snapshot_or_lacks_its_config_is_named(tmp_path):
    with pytest.raises(Exception, match="no 'diff_model"):
        build(write_release(tmp_path, ldm=False))
    path = write_release(tmp_path)
    (tmp_path / "pretrained" / "config.yaml").unlink()
    with pytest.raises(Exception, match="LDM config not found") as info:
        build(path)
    assert "pretrained_ldm_config" in str(info.value)
    elsewhere = tmp_path / "ldm.yaml"
    elsewhere.write_text(yaml.safe_dump(CONFIG))
    assert build(path, f"model.pretrained_ldm_config={elsewhere}").protocol["pretrained"]["ldm.yaml"]


@pytest.mark.parametrize("fault", ["copy_differs", "schedule_differs", "unknown_buffer", "copy_of_nothing"])
def test_the_samplers_copies_are_checked_then_dropped(tmp_path, fault):
    state = official_state()
    if fault == "copy_differs":
        key = "diffusion_sampler.model.model.diffusion_model.out.2.bias"
        state[key] = state[key] + 1
    elif fault == "schedule_differs":
        state["diffusion_sampler.alphas_cumprod"] = state["diffusion_sampler.alphas_cumprod"] * 0.5
    elif fault == "unknown_buffer":
        state["diffusion_sampler.ddim_extra"] = torch.zeros(3)
    else:
        state["diffusion_sampler.model.model.diffusion_model.extra.weight"] = torch.zeros(3)
    with pytest.raises(Exception, match="diffusion_sampler") as info:  # Hydra wraps the UserError
        build(write_release(tmp_path, state=state))
    wanted = "differ from what they copy" if fault.endswith("differs") else "copy nothing"
    assert wanted in str(info.value) and "midms_celebA_finetuned.pth" in str(info.value)


def test_an_unreadable_release_is_named_without_advice_to_unpickle(tmp_path):
    path = write_release(tmp_path)
    path.write_text("<!DOCTYPE html><html>Sign in to OneDrive</html>")
    with pytest.raises(Exception, match="not a PyTorch checkpoint: it is an HTML") as info:
        build(path)
    assert "weights_only" not in str(info.value) and "cvlab-kaist/MIDMs" in str(info.value)
    torch.save({"state_dict": {"net": torch.nn.Linear(1, 1)}}, path)  # a pickled module, not tensors
    with pytest.raises(Exception, match="holds Python objects") as info:
        build(path)
    assert "weights_only" not in str(info.value)


def test_a_wrong_layout_for_the_dataset_does_not_load(tmp_path):
    path = write_release(tmp_path)
    with pytest.raises(Exception, match="another shape"):
        build(path, "model.size=tiny")  # the tiny matching networks are not the released widths
    with pytest.raises(UserError):
        from midms.models.midms.released import split_release

        split_release({"real_enc.layer1.0.weight_orig": torch.zeros(1)})
