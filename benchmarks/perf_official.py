"""Our CoCosNet and MIDMs against the official code at paper size: the same weights and inputs, throughput ratios.

    python -m benchmarks.perf_official --cocosnet <folder>            # a checkout of microsoft/CoCosNet
    python -m benchmarks.perf_official --midms <folder>               # a checkout of cvlab-kaist/MIDMs
    python -m benchmarks.perf_official --cocosnet <folder> --batch 2 --repeats 5 --resolution 256
    make perf OFFICIAL_COCOSNET=<folder> OFFICIAL_MIDMS=<folder>

The official repository (https://github.com/microsoft/CoCosNet) is imported from the folder the user fetched;
nothing of it is shipped or downloaded here. Both sides are built with the README's celebahqedge options (15 input
channels, ``--adaptor_kernel 4 --warp_bilinear --maskmix --PONO --PONO_C --use_attention``, ``--warp_cycle_w 1``
for training):

1. inference: the official ``Pix2PixModel`` as ``test.py`` builds it (its networks loaded from
   ``latest_net_{Corr,G}.pth``, seeded random weights written in the official layout) and ``forward(mode="inference")``;
   ours loads the same files through ``model.pretrained`` and runs ``translate``. The outputs must agree (max
   absolute difference printed; they are the same to the last bit on a CPU), then each side translates the batch
   ``--repeats`` times after two warm-up calls: the median seconds and the ratio official / ours (> 1: ours is faster);
2. one training step (a generator step, then a discriminator step, as ``Pix2PixTrainer`` runs them): the official
   ``Pix2PixModel`` in training mode with its optimisers, and ours (``generator_losses`` and
   ``discriminator_losses`` with the optimisers of ``configure_optimizers``), the losses' VGG19 the same random
   weights written as ``models/vgg19_conv.pth``: the median of ``--repeats`` steps after a warm-up.

3. MIDMs inference (``--midms``): the official model built and saved as :mod:`benchmarks.official_midms` builds it
   (``inference.py``'s construction, seeded random weights, the CelebA-HQ LDM's config), ours loaded from that file;
   one run of each with the same sampling noise gives the image difference, then each side translates the batch
   ``--repeats`` times with its own noise (no instrumentation): the median seconds and the ratio (target >= 3x).

The official CoCosNet runs on CUDA only: on a CPU, ``Tensor.cuda`` is made the identity while it runs and its device
list is empty but names the CPU as the place of the losses' VGG19; ``torch.optim.Adam`` takes its betas ``(0, 0.9)``
as floats, which today's torch requires (nothing else changes); its repository lacks
``models/networks/sync_batchnorm`` (a submodule: ``nn.BatchNorm`` stands in, which the celebahqedge networks never
use). The targets the suite holds itself to are printed beside the ratios: inference >= 1.5x, a training step >= 1.2x.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

log = logging.getLogger("benchmarks.perf_official")

SEMANTIC_NC = 15  # CoCosNet's CelebA-HQ edge tensor (celebahqedge_dataset.py)
# the README's celebahqedge commands (training; the test command adds --adaptor_kernel 4, the released sizes)
README_OPTIONS = ["--dataset_mode", "celebahqedge", "--use_attention", "--maskmix", "--PONO", "--PONO_C",
                  "--warp_bilinear", "--adaptor_kernel", "4"]  # fmt: skip
README_TRAINING = ["--niter", "30", "--niter_decay", "30", "--which_perceptual", "4_2", "--weight_perceptual", "0.001",
                   "--vgg_normal_correct", "--fm_ratio", "1.0", "--warp_cycle_w", "1"]  # fmt: skip
TARGETS = {"inference": 1.5, "training step": 1.2}
MIDMS_TARGET = 3.0


@contextlib.contextmanager
def official_cocosnet(folder: Path, workdir: Path) -> Iterator[None]:
    """Import ``folder`` as the official code expects, on this machine's device, from ``workdir`` (its relative
    paths: ``models/vgg19_conv.pth``, ``./util/color150.mat``)."""
    import scipy.io
    import torch.nn as nn

    missing = [p for p in ("models/pix2pix_model.py", "models/networks/correspondence.py", "options/test_options.py")
               if not (folder / p).is_file()]  # fmt: skip
    if missing:
        raise SystemExit(f"{folder} is not a checkout of microsoft/CoCosNet: {', '.join(missing)} missing.")
    stub = types.ModuleType("models.networks.sync_batchnorm")  # a git submodule, absent from a plain checkout
    stub.SynchronizedBatchNorm1d, stub.SynchronizedBatchNorm2d = nn.BatchNorm1d, nn.BatchNorm2d
    stub.DataParallelWithCallback = nn.DataParallel
    sys.modules["models.networks.sync_batchnorm"] = stub
    saved = {"loadmat": scipy.io.loadmat, "cwd": os.getcwd(), "cuda": torch.Tensor.cuda, "adam": torch.optim.Adam}

    class Adam(saved["adam"]):  # today's torch rejects create_optimizers' betas (0, 0.9): an int beside a float
        def __init__(self, params, *args, betas=(0.9, 0.999), **kwargs):
            super().__init__(params, *args, betas=tuple(float(b) for b in betas), **kwargs)

    torch.optim.Adam = Adam
    scipy.io.loadmat = lambda *a, **k: {"colors": np.zeros((150, 3), np.uint8)}  # util/color150.mat, for display
    if not torch.cuda.is_available():  # preprocess_input moves the celebahqedge inputs to CUDA unconditionally
        torch.Tensor.cuda = lambda self, *a, **k: self
    sys.path.insert(0, str(folder))
    os.chdir(workdir)
    try:
        yield
    finally:
        os.chdir(saved["cwd"])
        scipy.io.loadmat, torch.Tensor.cuda, torch.optim.Adam = saved["loadmat"], saved["cuda"], saved["adam"]
        sys.path.remove(str(folder))


def official_options(training: bool, batch: int, workdir: Path, resolution: int = 256) -> Any:
    """The official option object of ``test.py`` / ``train.py`` for the README's commands."""
    module = "options.train_options" if training else "options.test_options"
    cls = "TrainOptions" if training else "TestOptions"
    gpu = "0" if torch.cuda.is_available() else "-1"
    argv = [
        "x",
        "--name",
        "celebahqedge",
        "--dataroot",
        str(workdir),
        "--checkpoints_dir",
        str(workdir / "ckpt"),
        "--gpu_ids",
        gpu,
        "--batchSize",
        str(batch),
        "--crop_size",
        str(resolution),
        "--load_size",
        str(resolution),
        *README_OPTIONS,
        *(README_TRAINING if training else []),
    ]
    saved, sys.argv = sys.argv, argv
    try:
        with contextlib.redirect_stdout(open(os.devnull, "w")):  # noqa: SIM115  (it prints every option)
            opt = getattr(__import__(module, fromlist=[cls]), cls)().parse()
    finally:
        sys.argv = saved
    if not torch.cuda.is_available():
        opt.gpu_ids = _NoGPU()
    return opt


class _NoGPU(list):
    """The official code's device list on a CPU: empty (nothing is moved to CUDA), but ``gpu_ids[0]`` (where the
    training model puts its VGG19) is the CPU."""

    def __getitem__(self, index):
        return "cpu"


def write_release(workdir: Path, seed: int) -> Path:
    """Seeded random official networks saved as a release (``latest_net_{Corr,G,D}.pth``), the losses' VGG19 as
    ``models/vgg19_conv.pth``."""
    from models.networks import define_Corr, define_D, define_G
    from models.networks.correspondence import VGG19_feature_color_torchversion

    torch.manual_seed(seed)
    opt = official_options(True, 1, workdir)
    folder = workdir / "ckpt" / "celebahqedge"
    folder.mkdir(parents=True, exist_ok=True)
    for name, net in (("Corr", define_Corr(opt)), ("G", define_G(opt)), ("D", define_D(opt))):
        torch.save(net.state_dict(), folder / f"latest_net_{name}.pth")
    (workdir / "models").mkdir(exist_ok=True)
    torch.save(
        VGG19_feature_color_torchversion(vgg_normal_correct=True).state_dict(), workdir / "models" / "vgg19_conv.pth"
    )
    return folder


def make_batch(batch: int, resolution: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    edges = lambda: (torch.rand(batch, SEMANTIC_NC, resolution, resolution, generator=g) > 0.9).float()  # noqa: E731
    photo = lambda: torch.rand(batch, 3, resolution, resolution, generator=g) * 2 - 1  # noqa: E731
    return {"semantics": edges(), "exemplar_semantics": edges(), "image": photo(), "exemplar": photo()}


def official_data(batch: dict[str, torch.Tensor], paired: bool) -> dict[str, Any]:
    """What the official loader yields for the same pairs (``Pix2pixDataset.__getitem__``)."""
    flag = torch.ones_like(batch["exemplar"]) if paired else torch.zeros_like(batch["exemplar"])
    return {
        "label": batch["semantics"].clone(),
        "label_ref": batch["exemplar_semantics"].clone(),
        "image": batch["image"].clone(),
        "ref": batch["exemplar"].clone(),
        "self_ref": flag,
        "path": ["x"],
    }


def build_ours(release: Path, vgg: Path | None, resolution: int):
    import hydra
    from hydra import compose, initialize_config_dir

    import midms  # noqa: F401  (the config's resolvers)
    from midms.data.contract import DataSpec

    overrides = ["dataset=celebahq", "model=cocosnet", "model.size=paper", f"model.pretrained={release}",
                 f"train={'true' if vgg else 'false'}", "paths.output_dir=/tmp/unused"]  # fmt: skip
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides)
    module = cfg.model.module
    module.vgg_weights = str(vgg) if vgg else None
    spec = DataSpec(semantic_nc=SEMANTIC_NC, image_size=resolution, num_classes=19, has_target=False)
    return hydra.utils.instantiate(module, data_spec=spec)


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up: the first calls allocate
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def compare_cocosnet(folder: Path, batch: int, resolution: int, repeats: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data = make_batch(batch, resolution, seed)
        with official_cocosnet(folder, workdir):
            from models.pix2pix_model import Pix2PixModel

            release = write_release(workdir, seed)
            theirs = Pix2PixModel(official_options(False, batch, workdir, resolution)).eval()
        ours = build_ours(release, None, resolution).eval()
        with torch.no_grad(), official_cocosnet(folder, workdir):
            official_out = theirs(official_data(data, False), mode="inference")["fake_image"]
        with torch.no_grad():
            our_out = ours.translate(data)
        agreement = float((official_out.clamp(-1, 1) - our_out).abs().max())
        log.info("inference outputs: max |official - ours| = %.3g", agreement)

        def official_inference():
            with torch.no_grad(), official_cocosnet(folder, workdir):
                theirs(official_data(data, False), mode="inference")

        def our_inference():
            with torch.no_grad():
                ours.translate(data)

        inference = {"official_s": median_seconds(official_inference, repeats),
                     "ours_s": median_seconds(our_inference, repeats)}  # fmt: skip
        training = time_training_steps(folder, workdir, release, data, repeats)
    return {"batch": batch, "resolution": resolution, "max_abs_diff": agreement, "inference": inference,
            "training step": training}  # fmt: skip


def time_training_steps(folder: Path, workdir: Path, release: Path, data: dict, repeats: int) -> dict[str, float]:
    """A G step then a D step on each side (paired samples: every loss term active), median seconds."""
    batch, resolution = data["image"].shape[0], data["image"].shape[-1]
    with official_cocosnet(folder, workdir):
        from models.pix2pix_model import Pix2PixModel

        theirs = Pix2PixModel(official_options(True, batch, workdir, resolution)).train()
        opt_g, opt_d = theirs.create_optimizers(theirs.opt)

    def official_step():
        with official_cocosnet(folder, workdir):
            opt_g.zero_grad()
            g_losses, out = theirs(official_data(data, True), mode="generator")
            sum(g_losses.values()).mean().backward()
            opt_g.step()
            opt_d.zero_grad()
            for_d = {k: out[k] for k in ("fake_image", "adaptive_feature_seg", "adaptive_feature_img")}
            d_losses = theirs(official_data(data, True), mode="discriminator", GforD=for_d)
            sum(d_losses.values()).mean().backward()
            opt_d.step()

    official_s = median_seconds(official_step, repeats)
    ours = build_ours(release, workdir / "models" / "vgg19_conv.pth", resolution).train()
    (our_g, our_d), _ = ours.configure_optimizers()
    ours_batch = {**data, "id": [f"a{i}" for i in range(batch)], "exemplar_id": [f"a{i}" for i in range(batch)]}

    def our_step():
        our_g.zero_grad()
        terms, out = ours.generator_losses(ours_batch)
        torch.stack(list(terms.values())).sum().backward()
        our_g.step()
        our_d.zero_grad()
        torch.stack(list(ours.discriminator_losses(ours_batch, out["fake"]).values())).sum().backward()
        our_d.step()

    return {"official_s": official_s, "ours_s": median_seconds(our_step, repeats)}


def compare_midms(folder: Path, resolution: int, repeats: int, seed: int) -> dict[str, Any]:
    import yaml

    from benchmarks import official_midms as om

    with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        config = om.celebahq_ldm_config()
        config_path = workdir / "ldm_config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        theirs = om.build_official(folder, config_path, seed)
        ours = om.build_ours(om.save_as_train_py(theirs, workdir, config), resolution)
        with om.official_imports(folder):
            theirs.set_copy()  # inference.py
        theirs.eval()
        batch = om.make_batch(resolution, seed)
        noises = om.our_noises(ours, (1, 3, resolution // 4, resolution // 4))
        same_noise = om.image_diff(om.run_ours(ours, batch)["image"], om.run_official(theirs, batch, noises)["image"])
        log.info("MIDMs outputs with the same noise: %s", same_noise)

        def official_inference():
            with om.official_imports(folder):
                trg = batch["semantics"][:, :1].repeat(1, 3, 1, 1)
                theirs(trg, batch["image"], batch["exemplar"], input_semantics=batch["semantics"],
                       ref_semantics=batch["exemplar_semantics"], mode="inference", iter=1, warmup_iter=0)  # fmt: skip

        timing = {"official_s": median_seconds(official_inference, repeats),
                  "ours_s": median_seconds(lambda: ours.translate(batch), repeats)}  # fmt: skip
    return {"resolution": resolution, "image_diff": same_noise, "inference": timing}


def report_rows(result: dict[str, Any]) -> list[str]:
    lines = [f"CoCosNet at {result['resolution']} px, batch {result['batch']}, {torch.get_num_threads()} threads; "
             f"outputs: max |official - ours| = {result['max_abs_diff']:.3g}"]  # fmt: skip
    for what, target in TARGETS.items():
        r = result[what]
        ratio = r["official_s"] / r["ours_s"]
        lines.append(f"  {what:<14} official {r['official_s']:.3f} s, ours {r['ours_s']:.3f} s: {ratio:.2f}x "
                     f"(target >= {target}x: {'met' if ratio >= target else 'not met'})")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cocosnet", type=Path, help="a checkout of microsoft/CoCosNet")
    parser.add_argument("--midms", type=Path, help="a checkout of cvlab-kaist/MIDMs (its code needs einops)")
    parser.add_argument("--batch", type=int, default=1, help="images per call, the same on both sides")
    parser.add_argument("--resolution", type=int, default=256, help="input size (paper: 256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after a warm-up (the median is kept)")
    parser.add_argument("--seed", type=int, default=0, help="weights and inputs")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("midms").setLevel(logging.WARNING)
    if not (args.cocosnet or args.midms):
        parser.error("give --cocosnet and/or --midms: the official checkouts to compare with")
    result: dict[str, Any] = {"threads": torch.get_num_threads()}
    if args.cocosnet:
        result["cocosnet"] = compare_cocosnet(args.cocosnet.expanduser().resolve(), args.batch, args.resolution,
                                              args.repeats, args.seed)  # fmt: skip
        for line in report_rows(result["cocosnet"]):
            log.info("%s", line)
    if args.midms:
        result["midms"] = midms = compare_midms(args.midms.expanduser().resolve(), args.resolution, args.repeats,
                                                args.seed)  # fmt: skip
        r = midms["inference"]
        ratio = r["official_s"] / r["ours_s"]
        verdict = "met" if ratio >= MIDMS_TARGET else "not met"
        log.info("MIDMs at %d px: official %.2f s, ours %.2f s an image: %.2fx (target >= %sx: %s)",
                 midms["resolution"], r["official_s"], r["ours_s"], ratio, MIDMS_TARGET, verdict)  # fmt: skip
    if args.out:
        from midms.files import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
