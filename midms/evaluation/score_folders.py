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

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from midms.errors import UserError
from midms.evaluation import folder as layout
from midms.evaluation.scoring import Scores, score_folder
from midms.metrics.base import Metric, input_id_of
from midms.metrics.folders import list_images
from midms.provenance import package_versions
from midms.resources import conf_dir

log = logging.getLogger("midms.eval")
METRICS_CONF = conf_dir() / "metrics"


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


def folder_layout(root: Path, folders: dict[str, str | Path | None], stems: list[str], batch_size: int) -> None:
    """Lay the user's folders out as an evaluation folder (:mod:`midms.evaluation.folder`) under ``root``, by
    symbolic links: nothing is copied, and :func:`~midms.evaluation.scoring.score_folder` reads it as a run's."""
    reference, eval_dir = root / "reference", root / layout.EVAL
    reference.mkdir(parents=True)
    eval_dir.mkdir()
    links = {
        root / layout.SAMPLES: folders["fake"],
        reference / "image": folders["real"],
        reference / "exemplar": folders["exemplars"],
        reference / "target": folders["target"],
        eval_dir / "labels": folders["labels"],
        eval_dir / "exemplar_labels": folders["exemplar_labels"],
    }
    for link, folder in links.items():
        if folder is not None:
            link.symlink_to(Path(folder).resolve(), target_is_directory=True)
    layout.write_pairs(eval_dir, [{"name": s, "id": input_id_of(s), "exemplar_id": "", "batch": i // batch_size}
                                  for i, s in enumerate(stems)])  # fmt: skip


def score_folders(
    fake: str | Path,
    real: str | Path,
    *,
    exemplars: str | Path | None = None,
    target: str | Path | None = None,
    labels: str | Path | None = None,
    exemplar_labels: str | Path | None = None,
    metrics: dict[str, Metric] | list[str] | None = None,
    preset: str = "default",
    vgg_weights: str | None = None,
    size: int = 256,
    resize: bool = False,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    seed: int = 0,
    cache_dir: str | Path = ".cache/midms",
) -> Scores:
    """Score a folder of outputs from any codebase against the real images (files matched by name).

    ``metrics``: metric objects, or names from the ``preset`` of ``conf/metrics/`` (default: all of it).
    Unusable input is a :class:`~midms.errors.UserError` naming the files. Example::

        from midms import score_folders
        scores = score_folders("out/fake", "data/real", target="data/gt", metrics=["psnr", "ssim"], size=64)
        print(scores.metrics["psnr"], scores.skipped)
    """
    found = list_images(fake)
    stems = list(found)
    folders = {"fake": fake, "real": real, "exemplars": exemplars, "target": target, "labels": labels,
               "exemplar_labels": exemplar_labels}  # fmt: skip
    files = {name: matched(name.replace("_", "-"), folders[name], stems) for name in folders if name != "fake"}
    if not isinstance(metrics, dict):
        metrics = build_metrics(metrics, preset, vgg_weights)
    sizes = check_files({"fake": found, **files}, stems, size, resize)
    real_id = hashlib.sha256(f"{Path(real).resolve()}:{len(stems)}".encode()).hexdigest()[:12]
    resized = {"to": size, "from": [list(s) for s in sizes], "filter": "PIL bilinear (label maps: nearest)"}
    info = layout.FolderInfo(
        "", None, f"folder-{real_id}-{size}px", size, found[stems[0]].suffix.lstrip(".").lower(),
        extra={"resize_labels": True, "resize": resized if resize and sizes != [(size, size)] else None},
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder_layout(Path(tmp), folders, stems, batch_size)
        info.reference_dir = str(Path(tmp) / "reference")
        info.write(Path(tmp) / layout.EVAL)
        return score_folder(tmp, metrics, cache_dir, device=device, seed=seed, grid_rows=0)


def as_json(scores: Scores, args: argparse.Namespace) -> dict:
    """What ``midms-eval`` prints: values, what each metric declared, skips, errors and the protocol."""
    return {
        "metrics": scores.metrics,
        "metric_info": {key: info.to_dict() for key, info in scores.info.items()},
        "skipped": scores.skipped,
        "metric_errors": scores.errors,
        "protocol": {
            "num_images": scores.num_images,
            "image_size": args.size,
            "resize": scores.folder.extra["resize"],
            "image_format": scores.folder.image_format,
            "seed": args.seed,
            "fake": str(args.fake),
            "real": str(args.real),
            "metrics": scores.protocol,
            "packages": package_versions(),
        },
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="midms-eval",
        description="Score a folder of outputs from any codebase with the suite's metrics and protocol. Files are "
        "matched by name (stem) across the folders; label maps are single-channel PNGs of class ids.",
        epilog="Prints one JSON object (values, skipped metrics with reasons, protocol); exit status 2 on unusable "
        "input, naming the files.",
    )
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
    p.add_argument(
        "--batch-size", type=int, default=32, help="images per forward pass of a metric network (default 32)"
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:<n>, or auto: cuda when available (default)")
    p.add_argument("--seed", type=int, default=0, help="seed of the metrics' random draws: SWD's patches, bootstraps")
    p.add_argument("--cache-dir", default=".cache/midms", help="reference statistics cache (default .cache/midms)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = {k: v for k, v in vars(args).items() if k not in ("fake", "real", "metrics")}
    try:
        names = args.metrics.split(",") if args.metrics else None
        scores = score_folders(args.fake, args.real, metrics=names, **options)
    except UserError as e:
        log.error("%s", e)
        return 2
    sys.stdout.write(json.dumps(as_json(scores, args), indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
