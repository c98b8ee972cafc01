"""``midms-eval``: score a folder of outputs from any codebase with the suite's metrics and protocol.

    midms-eval --fake OUT --real REAL [--exemplars EX] [--target GT] [--labels L] [--exemplar-labels EL]
               [--metrics fid,kid,swd,...] [--size 256] [--resize]

Files are matched by name (stem) across the folders; label maps are single-channel PNGs of class ids.
Prints one JSON object: values, skipped metrics with reasons, metric errors and protocol fields. Exits
non-zero on unusable input, saying which files: an empty folder, names that do not match, two files under
one name, an unreadable file, images of another size than ``--size`` (unless ``--resize``, recorded).
A distribution metric on fewer images than it is defined on is skipped with that reason.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image
from tqdm.auto import tqdm

from midms.errors import UserError
from midms.evaluation.metric_set import MetricSet
from midms.imageio import load_image_tensor
from midms.metrics.base import EvalBatch, EvalContext
from midms.metrics.folders import list_images, to_unit
from midms.provenance import package_versions
from midms.resources import conf_dir

log = logging.getLogger("midms.eval")
METRICS_CONF = conf_dir() / "metrics"


def load_labels(path: Path, size: int) -> torch.Tensor:
    with Image.open(path) as im:
        if im.mode not in ("L", "P", "I", "I;16"):
            raise UserError(f"label map {path} has mode {im.mode}; expected a single-channel PNG of class ids")
        im = im.resize((size, size), Image.NEAREST) if im.size != (size, size) else im
        return torch.from_numpy(np.asarray(im).astype(np.int64))


def matched(name: str, folder: Path | None, stems: list[str]) -> dict[str, Path] | None:
    """Files of ``folder`` for exactly ``stems``; an error naming the missing ones otherwise."""
    if folder is None:
        return None
    files = list_images(folder)
    missing = [s for s in stems if s not in files]
    if missing:
        raise UserError(
            f"--{name} {folder} lacks {len(missing)} of the {len(stems)} names in --fake, "
            f"e.g. {missing[:5]}; files are matched by name (stem)."
        )
    return files


def check_files(folders: dict[str, dict[str, Path] | None], stems: list[str], size: int, resize: bool) -> list:
    """Decode every file that will be read: unreadable ones are an error naming them; so are images whose size
    is not ``size``×``size``, unless ``resize``. Returns the distinct sizes met (for the protocol)."""
    from midms.imageio import UnsupportedImage, check_image, to_rgb

    unreadable, sizes, off = [], set(), []
    for flag, files in folders.items():
        for stem in stems if files is not None else []:
            path = files[stem]
            reason = check_image(path, full=True)
            if reason is not None:
                unreadable.append(f"{path} ({reason})")
                continue
            with Image.open(path) as im:
                if "labels" not in flag:  # photos: their mode must have an 8-bit RGB reading
                    try:
                        to_rgb(im, path)
                    except UnsupportedImage as err:
                        unreadable.append(f"{path} ({err.reason})")
                        continue
                sizes.add(im.size)
                if im.size != (size, size):
                    off.append(f"{flag}: {path.name} {im.size[0]}×{im.size[1]}")
    if unreadable:
        raise UserError(
            f"{len(unreadable)} file(s) cannot be read: {unreadable[:5]}. Replace or remove them and run again."
        )
    if off and not resize:
        raise UserError(
            f"{len(off)} image(s) are not {size}×{size} px (the evaluation size, --size), e.g. {off[:4]}. Pass "
            f"--size with the images' size, or --resize to resize them (PIL bilinear; label maps nearest), which the "
            f"protocol records."
        )
    return sorted(sizes)


def load_preset(preset: str):
    """A metric preset of ``conf/metrics/``, with the presets its ``defaults`` list names merged in first (as
    Hydra composes it for ``run.py metrics=<preset>``)."""
    path = METRICS_CONF / f"{preset}.yaml"
    if not path.exists():
        raise UserError(
            f"metric preset {path} does not exist; available: {sorted(p.stem for p in METRICS_CONF.glob('*.yaml'))}"
        )
    conf = OmegaConf.load(path)
    parents = [d for d in conf.pop("defaults", []) if d != "_self_"]
    return OmegaConf.merge(*[load_preset(str(d)) for d in parents], conf)


#: the metrics computed on VGG19 features (CoCosNet's semantic consistency and style relevance)
VGG_METRICS = ("semantic", "style")


def build_metrics(names: list[str] | None, preset: str, vgg_weights: str | None = None) -> dict:
    """The preset's metrics (or ``names`` of them); ``vgg_weights`` replaces the VGG metrics' weights (the papers':
    CoCosNet's Caffe ``vgg19_conv.pth``)."""
    conf = load_preset(preset)
    if vgg_weights:
        if not Path(vgg_weights).expanduser().is_file():
            raise UserError(f"--vgg-weights {vgg_weights}: no such file (CoCosNet's vgg19_conv.pth, or torchvision's)")
        for name in VGG_METRICS:
            if conf.get(name) is not None:
                conf[name].weights = str(Path(vgg_weights).expanduser())
    unknown = sorted(set(names or []) - set(conf))
    if unknown:
        elsewhere = [p.stem for p in sorted(METRICS_CONF.glob("*.yaml")) if set(unknown) <= set(load_preset(p.stem))]
        hint = f"; pass --preset {elsewhere[0]}, which defines them" if elsewhere else ""
        raise UserError(f"unknown metrics {unknown}; the preset {preset} defines {sorted(conf)}{hint}")
    return {n: instantiate(conf[n], name=n) for n in (names or list(conf)) if conf[n] is not None}


def score(args: argparse.Namespace) -> dict:
    fake = list_images(args.fake)
    stems = list(fake)
    real = matched("real", args.real, stems)
    exemplars = matched("exemplars", args.exemplars, stems)
    target = matched("target", args.target, stems)
    labels = matched("labels", args.labels, stems)
    ex_labels = matched("exemplar-labels", args.exemplar_labels, stems)
    assert real is not None
    metric_set = MetricSet(
        build_metrics(args.metrics.split(",") if args.metrics else None, args.preset, args.vgg_weights)
    )
    used = {"fake": fake, "real": real, "exemplars": exemplars, "target": target, "labels": labels}
    sizes = check_files({**used, "exemplar-labels": ex_labels}, stems, args.size, args.resize)
    real_id = hashlib.sha256(f"{Path(args.real).resolve()}:{len(real)}".encode()).hexdigest()[:12]
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp)
        (reference / "image").symlink_to(Path(args.real).resolve(), target_is_directory=True)
        ctx = EvalContext(
            samples_dir=Path(args.fake),
            reference_dir=reference,
            cache_dir=Path(args.cache_dir),
            dataset_key=f"folder-{real_id}-{args.size}px",
            image_size=args.size,
            image_format=fake[stems[0]].suffix.lstrip(".").lower(),
            num_images=len(stems),
            device=torch.device(args.device),
            seed=args.seed,
        )
        metric_set.setup(ctx)
        for i in tqdm(range(0, len(stems), args.batch_size), desc="score", unit="batch", leave=False):
            chunk = stems[i : i + args.batch_size]

            def images(files, chunk=chunk):
                if files is None:
                    return None
                return to_unit(torch.stack([load_image_tensor(files[s], args.size) for s in chunk])).to(ctx.device)

            def label_maps(files, chunk=chunk):
                return None if files is None else torch.stack([load_labels(files[s], args.size) for s in chunk])

            metric_set.update(
                EvalBatch(
                    fake=images(fake),
                    image=images(real),
                    exemplar=images(exemplars),
                    names=chunk,
                    target=images(target),
                    labels=label_maps(labels),
                    exemplar_labels=label_maps(ex_labels),
                )
            )
        values = metric_set.compute(ctx)
    return {
        "metrics": values,
        "directions": metric_set.directions,
        "skipped": metric_set.skipped,
        "metric_errors": metric_set.errors,
        "protocol": {
            "num_images": len(stems),
            "image_size": args.size,
            "resize": (
                {"to": args.size, "from": [list(s) for s in sizes], "filter": "PIL bilinear (label maps: nearest)"}
                if args.resize and sizes != [(args.size, args.size)]
                else None
            ),
            "image_format": ctx.image_format,
            "seed": args.seed,
            "fake": str(args.fake),
            "real": str(args.real),
            "metrics": metric_set.protocol,
            "packages": package_versions(),
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="midms-eval", description=__doc__.splitlines()[0])
    p.add_argument("--fake", required=True, help="generated images")
    p.add_argument("--real", required=True, help="real images: FID/SWD reference and the semantic-consistency pair")
    p.add_argument("--exemplars", help="the exemplar of each output (style metrics)")
    p.add_argument("--target", help="ground-truth translations (PSNR, SSIM, LPIPS)")
    p.add_argument("--labels", help="label maps of the inputs (region-wise semantic/style metrics)")
    p.add_argument("--exemplar-labels", dest="exemplar_labels", help="label maps of the exemplars")
    p.add_argument("--metrics", help="comma-separated names from the preset (default: all of it)")
    p.add_argument("--preset", default="default", help="metric preset in conf/metrics/ (default: default)")
    p.add_argument("--size", type=int, default=256, help="the evaluation size: images are size×size (default 256)")
    p.add_argument(
        "--resize",
        action="store_true",
        help="resize images of other sizes to --size (PIL bilinear, as the VGG metric scripts; recorded)",
    )
    p.add_argument(
        "--vgg-weights",
        dest="vgg_weights",
        help="VGG19 weights of the semantic and style metrics, e.g. CoCosNet's vgg19_conv.pth (the papers' values); "
        "recorded in the metrics' protocol",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=".cache/midms", help="reference statistics cache (default .cache/midms)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = score(args)
    except UserError as e:
        log.error("%s", e)
        return 2
    sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
