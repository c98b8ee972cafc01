"""``make metric-check``: which metric sees structure, which sees style? Graded degradations of the ground truth.

The synthetic dataset's ``target`` is the true translation of each test pair, so a metric can be tested on
outputs whose error is known. Every degradation below is applied to the targets at graded strengths (level 0
is the target itself), the degraded images are scored through ``midms-eval``'s code path (the same metric
objects, the same 8-bit files), and each metric's values are rank-correlated (Spearman) with the strength:

- ``blur``: Gaussian blur, sigma in pixels at 64 px (scaled with the image size);
- ``noise``: additive Gaussian noise, standard deviation on [0, 1] images;
- ``jpeg``: JPEG compression at decreasing quality (level 0: none);
- ``structure_shift``: the image translated right and down by a fraction of its size (borders replicated):
  the layout moves, the style does not;
- ``style_error``: blended towards the input's labels rendered in a *third* scene's style (strength 1: the right
  structure in the wrong style);
- ``copy_exemplar``: blended towards the exemplar (strength 1: what ``model=copy_exemplar`` outputs).

``sensitivity`` is the rank correlation oriented so that +1 means "the metric gets strictly worse as the
degradation grows"; a metric with a sensitivity below :data:`BLIND_BELOW` cannot see that degradation.
Metrics whose weights are absent are reported as skipped, with the reason, as everywhere in the suite.

The VGG metrics run twice where their weights allow: on the papers' VGG19 (``semantic``, ``style``: skipped without
the ImageNet or Caffe file) and on the synthetic set's own perception network (``semantic_domain``, ``style_domain``:
:mod:`midms.nn.domain_vgg`, trained once on the synthetic training split at this size and cached).

    python -m benchmarks.metric_check [--num-images 128] [--size 64] [--metrics psnr,ssim,swd] [--out DIR]
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.stats import spearmanr
from torchvision.transforms.functional import gaussian_blur
from tqdm.auto import tqdm

from midms.data.synthetic import SyntheticPairs
from midms.errors import UserError
from midms.evaluation.images import save_images, to_uint8
from midms.evaluation.score_folders import build_metrics, score_folders
from midms.reporting.tables import UNCERTAINTY_SUFFIXES

log = logging.getLogger("midms.metric_check")

BLIND_BELOW = 0.5  # a sensitivity under this: the metric does not order the degradation's strengths


@dataclass(frozen=True)
class Degradation:
    """A graded corruption of B×3×H×W images in [0, 1]: ``apply(images, strength, pairs)``; ``strengths[0]``
    leaves the images unchanged."""

    name: str
    strengths: tuple[float, ...]
    apply: Callable[[torch.Tensor, float, dict], torch.Tensor]
    unit: str


def blur(x: torch.Tensor, sigma: float, pairs: dict) -> torch.Tensor:
    sigma = sigma * x.shape[-1] / 64
    if sigma <= 0:
        return x
    kernel = 2 * math.ceil(3 * sigma) + 1
    return gaussian_blur(x, [kernel, kernel], [sigma, sigma])


def noise(x: torch.Tensor, std: float, pairs: dict) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (x + std * torch.randn(x.shape, generator=g)).clamp(0, 1)


def jpeg(x: torch.Tensor, quality: float, pairs: dict) -> torch.Tensor:
    """JPEG round trip through Pillow at ``quality`` (4:2:0 subsampling, Pillow's default); 0: no compression."""
    if quality <= 0:
        return x
    out = []
    for image in x:
        buffer = io.BytesIO()
        array = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality))
        buffer.seek(0)
        with Image.open(buffer) as im:
            out.append(torch.from_numpy(np.asarray(im.convert("RGB"))).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


def structure_shift(x: torch.Tensor, fraction: float, pairs: dict) -> torch.Tensor:
    """Translate right and down by ``round(fraction · size)`` pixels; the uncovered border repeats the edge."""
    d = round(fraction * x.shape[-1])
    if d == 0:
        return x
    padded = F.pad(x, (d, 0, d, 0), mode="replicate")
    return padded[..., : x.shape[-2], : x.shape[-1]]


def style_error(x: torch.Tensor, alpha: float, pairs: dict) -> torch.Tensor:
    return (1 - alpha) * x + alpha * pairs["wrong_style"]


def copy_exemplar(x: torch.Tensor, alpha: float, pairs: dict) -> torch.Tensor:
    return (1 - alpha) * x + alpha * pairs["exemplar"]


DEGRADATIONS: tuple[Degradation, ...] = (
    Degradation("blur", (0.0, 0.5, 1.0, 2.0, 3.0), blur, "sigma (px at 64 px)"),
    Degradation("noise", (0.0, 0.03, 0.06, 0.12, 0.25), noise, "std"),
    Degradation("jpeg", (0.0, 90.0, 50.0, 20.0, 5.0), jpeg, "quality (0: none)"),
    Degradation("structure_shift", (0.0, 1 / 32, 1 / 16, 1 / 8, 1 / 4), structure_shift, "fraction of the size"),
    Degradation("style_error", (0.0, 0.25, 0.5, 0.75, 1.0), style_error, "blend"),
    Degradation("copy_exemplar", (0.0, 0.25, 0.5, 0.75, 1.0), copy_exemplar, "blend"),
)


def synthetic_pairs(num_images: int, size: int, seed: int = 0) -> dict:
    """The first ``num_images`` test pairs of the default synthetic dataset as [0, 1] tensors, with each input's
    labels rendered in the style of a third scene (neither the input's nor the exemplar's)."""
    if num_images < 2:
        raise UserError(f"--num-images {num_images}: the distribution metrics need at least 2 images")
    dataset = SyntheticPairs("test", image_size=size, sizes={"test": max(num_images, 3)}, seed=seed)
    keys = ("image", "exemplar", "target", "labels", "exemplar_labels")
    pairs: dict[str, list] = {k: [] for k in (*keys, "wrong_style", "id")}
    for i in range(num_images):
        sample = dataset[i]
        for k in keys:
            pairs[k].append(sample[k])
        pairs["id"].append(sample["id"])
        j = dataset.exemplar_index(i)
        third = next(k for k in range(1, len(dataset)) if (i + k) % len(dataset) not in (i, j))
        third_style = dataset.scene((i + third) % len(dataset)).style
        pairs["wrong_style"].append(torch.from_numpy(dataset.scene(i).render(third_style)))
    out = {k: torch.stack(v) if k != "id" else v for k, v in pairs.items()}
    for k in ("image", "exemplar", "target", "wrong_style"):
        out[k] = ((out[k] + 1) / 2).clamp(0, 1)
    return out


def _save(images: torch.Tensor, names: Sequence[str], folder: Path) -> None:
    """[0, 1] images as 8-bit PNGs, quantised as the evaluator saves a model's outputs."""
    save_images(to_uint8(images * 2 - 1), list(names), folder)


def _save_labels(labels: torch.Tensor, names: Sequence[str], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for label, name in zip(labels, names, strict=True):
        Image.fromarray(label.numpy().astype(np.uint8)).save(folder / f"{name}.png")


def measure(
    pairs: dict,
    metrics: list[str] | None,
    preset: str,
    work: Path,
    cache_dir: Path,
    degradations: Sequence[Degradation] = DEGRADATIONS,
) -> tuple[pd.DataFrame, dict[str, str], dict[str, str]]:
    """Score every (degradation, strength); returns the long table (metric, degradation, level, strength, value),
    the skipped metrics with their reasons and each value's direction (higher | lower is better)."""
    names, size = pairs["id"], pairs["target"].shape[-1]
    for folder in ("image", "exemplar", "target"):
        _save(pairs[folder], names, work / folder)
    _save_labels(pairs["labels"], names, work / "labels")
    _save_labels(pairs["exemplar_labels"], names, work / "exemplar_labels")
    built = build_metrics(metrics, preset)
    training_split = {"_target_": "midms.data.synthetic.SyntheticPairs", "image_size": size}  # the pairs' data
    for metric in built.values():  # weights: domain -> the network of this synthetic data's training split
        if hasattr(metric, "resolve_domain_network"):
            metric.resolve_domain_network(training_split, cache_dir)
    rows, skipped, directions = [], {}, {}
    for_identity = None
    jobs = [(d, level, s) for d in degradations for level, s in enumerate(d.strengths)]
    for degradation, level, strength in tqdm(jobs, desc="metric check", unit="set"):
        if level == 0 and for_identity is not None:  # level 0 is the target itself for every degradation
            result = for_identity
        else:
            fake = work / f"fake_{degradation.name}_{level}"
            _save(degradation.apply(pairs["target"], strength, pairs), names, fake)
            result = score_folders(
                fake,
                work / "image",
                exemplars=work / "exemplar",
                target=work / "target",
                labels=work / "labels",
                exemplar_labels=work / "exemplar_labels",
                metrics=built,
                size=size,
                batch_size=64,
                cache_dir=cache_dir,
            )
            if level == 0:
                for_identity = result
        skipped.update(result.skipped)
        skipped.update({k: f"error: {v}" for k, v in result.errors.items()})
        directions.update(result.directions)
        where = {"degradation": degradation.name, "level": level, "strength": strength}
        # a value's own uncertainty (``swd_ci95``: its bootstrap half-width) is not a measure of the images
        measured = {m: v for m, v in result.metrics.items() if not m.endswith(UNCERTAINTY_SUFFIXES)}
        rows += [{"metric": metric, **where, "value": value} for metric, value in measured.items()]
    return pd.DataFrame(rows), skipped, directions


def sensitivity(values: pd.DataFrame, directions: dict[str, str]) -> pd.DataFrame:
    """Metric × degradation: Spearman's rank correlation between level and value, signed so that +1 means the
    metric gets worse at every stronger level. NaN where the metric is constant over the levels."""
    out = {}
    for (metric, degradation), group in values.groupby(["metric", "degradation"], sort=False):
        group = group.sort_values("level")
        value = group["value"].to_numpy(dtype=float)
        worse = -value if directions.get(metric, "higher") == "higher" else value
        rho = spearmanr(group["level"].to_numpy(), worse).statistic if np.ptp(worse[np.isfinite(worse)]) else np.nan
        out.setdefault(metric, {})[degradation] = float(rho)
    return pd.DataFrame(out).T


def markdown(table: pd.DataFrame) -> str:
    """The sensitivity table with every entry under :data:`BLIND_BELOW` marked ``blind``."""

    def cell(v: float) -> str:
        return "blind (constant)" if np.isnan(v) else f"{v:+.2f}" + (" blind" if v < BLIND_BELOW else "")

    shown = table.apply(lambda column: column.map(cell))
    return shown.to_markdown(disable_numparse=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="metric_check", description=__doc__.splitlines()[0])
    p.add_argument("--num-images", type=int, default=128, help="test pairs of the synthetic dataset (default 128)")
    p.add_argument("--size", type=int, default=64, help="image size (default 64, the synthetic default)")
    p.add_argument("--metrics", help="comma-separated names from the preset (default: all of it)")
    p.add_argument(
        "--preset",
        default="synthetic_domain",
        help="metric preset in conf/metrics/ (default: synthetic_domain: the papers' metrics and the VGG ones on the "
        "synthetic set's own perception network)",
    )
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="where the tables are written")
    p.add_argument("--cache-dir", type=Path, default=Path(".cache/midms"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        pairs = synthetic_pairs(args.num_images, args.size)
        with tempfile.TemporaryDirectory() as tmp:
            values, skipped, directions = measure(
                pairs, args.metrics.split(",") if args.metrics else None, args.preset, Path(tmp), args.cache_dir
            )
    except UserError as e:
        log.error("%s", e)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    values.to_csv(args.out / "metric_check_values.csv", index=False)
    table = sensitivity(values, directions)
    table.to_csv(args.out / "metric_check.csv")
    text = markdown(table)
    lines = [f"Sensitivity (Spearman, +1: worse at every stronger level) on {args.num_images} pairs at {args.size} px"]
    lines += [text, ""] + [f"skipped {name}: {reason}" for name, reason in sorted(skipped.items())]
    (args.out / "metric_check.md").write_text("\n".join(lines) + "\n")
    log.info("%s", "\n".join(lines))
    log.info("written to %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
