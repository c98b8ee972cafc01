"""CoCosNet's feature-matching term weighs the same on one process and on two (gloo DDP, CPU).

The released run is 8 GPUs × 4 (CoCosNet README: --batchSize 32 over 8 GPUs); its weighted L1 is a mean over each
GPU's batch of weights that already sum to one, so the term's effective weight depends on the per-device batch.
This suite scales it to that per-device batch of 4: the gradient of a global batch of 8 must be the same from one
process with 8 samples as from two DDP processes with 4 each (whose gradients DDP averages).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from midms.baselines.cocosnet.model import CoCosNet

from midms.data.contract import DataSpec
from midms.nn import losses

RELEASED_PER_GPU_BATCH = 4  # CoCosNet README: --batchSize 32 on 8 GPUs


def _model(reference_batch: int | None) -> CoCosNet:
    torch.manual_seed(0)
    logging.disable(logging.WARNING)
    spec = DataSpec(semantic_nc=1, image_size=64, num_classes=None, has_target=False)
    model = CoCosNet(spec, ngf=8, ndf=8, match_channels=16, spade_hidden=8, vgg_weights="random", vgg_widths=[4] * 5)
    model.settings["fm_reference_batch"] = reference_batch
    return model


def _batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "semantics": torch.rand(8, 1, 64, 64, generator=g),
        "exemplar": torch.rand(8, 3, 64, 64, generator=g) * 2 - 1,
        "exemplar_semantics": torch.rand(8, 1, 64, 64, generator=g),
        "image": torch.rand(8, 3, 64, 64, generator=g) * 2 - 1,
        "paired": torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]),  # the self-reference flags of the batch
    }


def fm_term(net, model: CoCosNet, batch: dict) -> torch.Tensor:
    """The weighted feature-matching term of CoCosNet's generator loss, through ``net`` (the model or its DDP)."""
    out = net(batch, image=batch["image"])
    weights = losses.paired_sample_weights(batch["paired"], reference_batch=model.settings["fm_reference_batch"])
    fake, real = model._vgg(out["fake"]), model._vgg(batch["image"])
    return losses.vgg_feature_matching_loss(fake, real, weights) * model.settings["lambda_vgg"]


def _generator_grads(model: CoCosNet) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.generator.parameters() if p.grad is not None])


def _worker(rank: int, init: str, reference_batch: int | None, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    model = _model(reference_batch)
    ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    half = {k: v[rank * 4 : (rank + 1) * 4] for k, v in _batch().items()}
    fm_term(ddp, model, half).backward()
    if rank == 0:
        torch.save(_generator_grads(model), out)
    dist.barrier()
    dist.destroy_process_group()


def _two_processes(tmp_path: Path, reference_batch: int | None) -> torch.Tensor:
    out = tmp_path / f"grads-{reference_batch}.pt"
    mp.spawn(_worker, args=(f"file://{tmp_path / f'init-{reference_batch}'}", reference_batch, str(out)), nprocs=2)
    return torch.load(out, weights_only=True)


def _one_process(reference_batch: int | None) -> torch.Tensor:
    model = _model(reference_batch)
    fm_term(model, model, _batch()).backward()
    return _generator_grads(model)


@pytest.mark.slow  # two gloo processes (about 25 s); the DDP end-to-end runs are in the slow set too
def test_the_feature_matching_gradient_is_the_same_on_one_and_two_processes(tmp_path):
    one = _one_process(RELEASED_PER_GPU_BATCH)
    two = _two_processes(tmp_path, RELEASED_PER_GPU_BATCH)
    assert one.abs().max() > 0
    torch.testing.assert_close(two, one, rtol=1e-4, atol=1e-7)
    # without the scaling the device layout would change the weight: one process with 8 gives half the gradient
    torch.testing.assert_close(two, 2 * _one_process(None), rtol=1e-4, atol=1e-7)
