"""Fine-tuning on the synthetic dataset: the loss falls, matching improves, runs repeat under a seed; phases."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from hydra.errors import InstantiationException
from torch.utils.data import DataLoader, Subset

from midms.errors import UserError

#: a constant rate too: runs of different lengths then take the same first steps
WARMUP_ONLY = [
    "model.sizes.tiny.prior.train=false",
    "model.sizes.tiny.training.warmup_iter=100000",
    "model.sizes.tiny.training.lr_milestones=[1000]",
]


class LossRecorder(L.Callback):
    def __init__(self):
        self.losses: list[float] = []
        self.phases: list[str] = []
        self.lrs: list[float] = []  # of the matching networks, at each step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.phases.append(pl_module.phase())
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"] if isinstance(outputs, dict) else outputs))


def _fit(model, ds, steps: int, batch_size: int = 8, seed: int = 0) -> LossRecorder:
    L.seed_everything(seed)
    rec = LossRecorder()
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[rec],
    )
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    trainer.fit(model, loader)
    return rec


def matching_accuracy(model, batch, num_classes: int) -> float:
    """Fraction of pixels whose argmax of the warped one-hot exemplar labels equals the input label."""
    onehot = F.one_hot(batch["exemplar_labels"], num_classes).permute(0, 3, 1, 2).float()
    return (model.warp(batch, onehot).argmax(1) == batch["labels"]).float().mean().item()


def test_finetuning_lowers_loss_improves_matching_and_is_reproducible(build_model, batch_of):
    model, ds = build_model(*WARMUP_ONLY, input="labels", seed=0)
    untrained, _ = build_model(*WARMUP_ONLY, input="labels", seed=0)
    pairs = Subset(ds, range(8))
    batch = batch_of(ds, range(8))
    before = matching_accuracy(untrained, batch, ds.num_classes)
    rec = _fit(model, pairs, steps=30)
    assert set(rec.phases) == {"warmup"} and len(rec.losses) == 30
    assert sum(rec.losses[-5:]) < 0.5 * sum(rec.losses[:5])
    after = matching_accuracy(model, batch, ds.num_classes)
    assert after > before + 0.02, (before, after)  # measured: 0.331 -> 0.366
    again, _ = build_model(*WARMUP_ONLY, input="labels", seed=0)
    assert _fit(again, pairs, steps=3).losses == rec.losses[:3]  # same seed, same numbers


def test_prior_stage_then_warmup_then_end_to_end(build_model, tmp_path):
    """Without a pretrained LDM the prior stage trains the autoencoder and UNet before the first MIDMs step;
    then MIDMs warm-up, then end to end; a checkpoint keeps the trained prior and its latent scale."""
    model, ds = build_model("model.sizes.tiny.training.warmup_iter=2")
    vae0 = [p.detach().clone() for p in model.prior.vae.parameters()]
    rec = _fit(model, Subset(ds, range(4)), steps=4, batch_size=2)
    assert rec.phases == ["warmup"] * 2 + ["e2e"] * 2
    assert all(torch.isfinite(torch.tensor(rec.losses)))
    assert any(not torch.equal(a, b) for a, b in zip(vae0, model.prior.vae.parameters(), strict=True))
    assert model.prior.scale_factor != 1.0 and model.protocol["prior_stage"]["cache"] is None
    assert model.phase() == "e2e"
    assert all(p.requires_grad is False for p in model.prior.vae.parameters())
    assert all(p.requires_grad for p in model.prior.unet.parameters())  # trained end to end after warm-up

    ckpt: dict = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(ckpt)
    again, _ = build_model("model.sizes.tiny.training.warmup_iter=2")
    again.load_state_dict(ckpt["state_dict"])
    again.on_load_checkpoint(ckpt)
    assert again.prior.scale_factor == model.prior.scale_factor and again._prior_ready
    assert again.protocol["prior_stage"] == model.protocol["prior_stage"]  # the resumed run's record names it


def test_warmup_iter_is_a_step_count_or_a_fraction_of_the_run(build_model):
    for value, expected in (
        ("1.0", ["warmup"] * 4),
        ("0.5", ["warmup"] * 2 + ["e2e"] * 2),
        ("1", ["warmup"] + ["e2e"] * 3),
    ):
        model, ds = build_model("model.sizes.tiny.prior.train=false", f"model.sizes.tiny.training.warmup_iter={value}")
        assert _fit(model, Subset(ds, range(4)), steps=4, batch_size=2).phases == expected, value


def test_lr_milestones_are_epochs_or_fractions_of_the_run_and_decay_by_gamma(build_model):
    """Ints count epochs (the official ``--step``: the decay starts after that many whole epochs), floats are a
    fraction of the run's steps; each milestone passed multiplies the rate by ``lr_gamma``."""
    for milestones, steps, expected in (
        ("[1]", 6, [1, 1, 1, 0.5, 0.5, 0.5]),  # 3 batches an epoch: the 4th step is the 2nd epoch's first
        ("[0.5]", 4, [1, 1, 0.5, 0.5]),
        ("[1,0.75]", 4, [1, 1, 0.5, 0.25]),  # 2 batches an epoch here (4 scenes, batch 2)
    ):
        scenes = 6 if steps == 6 else 4
        model, ds = build_model(
            *WARMUP_ONLY,
            f"model.sizes.tiny.training.lr_milestones={milestones}",
            "model.sizes.tiny.training.lr=1e-3",
            "model.module.training.lr_gamma=0.5",
        )
        rec = _fit(model, Subset(ds, range(scenes)), steps=steps, batch_size=2)
        assert rec.lrs == pytest.approx([1e-3 * f for f in expected]), milestones


def test_a_milestone_at_zero_is_a_clear_error(build_model):
    with pytest.raises(InstantiationException, match="lr_milestones .0. must be > 0") as caught:
        build_model(*WARMUP_ONLY, "model.sizes.tiny.training.lr_milestones=[0]")
    assert isinstance(caught.value.__cause__, UserError)  # the runner reports it as a user mistake, no traceback


def test_channels_last_training_computes_the_same_losses_and_gradients(build_model, batch_of):
    """The ``memory_format`` callback (on by default) trains MIDMs in NHWC: its convolution weights and each
    step's images are channels-last, and the losses and gradients are the contiguous model's up to float
    rounding (Adam's normalised steps then let runs drift apart slowly, as any change of summation order does)."""
    from midms.training.memory_format import ChannelsLast, channels_last

    model, ds = build_model(*WARMUP_ONLY, input="labels", seed=0)
    nhwc = copy.deepcopy(model).to(memory_format=torch.channels_last)
    batch = batch_of(ds, range(4))
    grads = []
    for net, b in ((model, batch), (nhwc, channels_last(dict(batch)))):
        net._set_trainable("warmup")
        losses = net.midms_losses(b, "warmup")
        sum(losses.values()).backward()
        grads.append(([v.detach() for v in losses.values()], [p.grad for p in net.parameters() if p.grad is not None]))
    (plain_losses, plain_grads), (nhwc_losses, nhwc_grads) = grads
    assert len(plain_grads) == len(nhwc_grads) > 0
    for a, b in zip(plain_losses, nhwc_losses, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
    # as one vector: a bias feeding a normalisation has a gradient of pure rounding noise in either layout
    flat_plain, flat_nhwc = torch.cat([g.flatten() for g in plain_grads]), torch.cat([g.flatten() for g in nhwc_grads])
    assert float((flat_plain - flat_nhwc).norm() / flat_plain.norm()) < 1e-4

    fresh, _ = build_model(*WARMUP_ONLY, input="labels", seed=0)
    layouts: list[bool] = []
    step = fresh.training_step

    def spy(b, batch_idx):  # the step the trainer calls sees what the callback made of the batch
        layouts.append(b["image"].is_contiguous(memory_format=torch.channels_last))
        return step(b, batch_idx)

    fresh.training_step = spy
    trainer = L.Trainer(
        max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[ChannelsLast()],
    )  # fmt: skip
    trainer.fit(fresh, DataLoader(Subset(ds, range(8)), batch_size=4))
    assert layouts == [True, True]
    convs = [m.weight for m in fresh.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
