"""Figures of a report: a bar chart per metric (mean ± std over seeds) and a grid of the same inputs across
models."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from midms.metrics.base import input_id_of

log = logging.getLogger(__name__)


def bar_charts(
    table: pd.DataFrame, out_dir: Path, jobs: pd.DataFrame | None = None, info: dict[str, dict] | None = None
) -> list[Path]:
    """Per headline metric: each group's mean over seeds with its std as an error bar, every seed's value as a point
    (``jobs``: the completed jobs), the axis labelled with the metric's unit (``info``: the records' ``metric_info``)
    and ranged on the values, so that close results stay apart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths, info = [], info or {}
    labels = [
        f"{r.model}\n{r.dataset}" + ("" if r.ablation == "none" else f"\n{r.ablation}") for r in table.itertuples()
    ]
    for m in table.attrs.get("metrics", []):
        fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(table)), 3.5))
        x = np.arange(len(table))
        ax.errorbar(x, table[f"{m}_mean"], yerr=table[f"{m}_std"].fillna(0), fmt="o", capsize=5, color="#4c72b0",
                    markersize=7, label="mean ± std over seeds")  # fmt: skip
        if jobs is not None and m in jobs:
            for i, r in enumerate(table.itertuples()):
                mine = jobs[
                    (jobs["model"] == r.model) & (jobs["dataset"] == r.dataset) & (jobs["ablation"] == r.ablation)
                ]
                seeds = pd.to_numeric(mine[m], errors="coerce").dropna()
                ax.scatter(np.full(len(seeds), i + 0.15), seeds, s=14, color="#dd8452", zorder=3,
                           label="one seed" if i == 0 else None)  # fmt: skip
        ax.set_xticks(x, labels)
        ax.set_xlim(-0.6, len(table) - 0.4)
        unit = (info.get(m) or {}).get("unit") or ""
        ax.set_ylabel(f"{m} ({unit})" if unit else m)
        arrow = "higher" if table.attrs["directions"][m] == "higher" else "lower"
        ax.set_title(f"{m}: {arrow} is better")
        ax.margins(y=0.15)  # the range follows the values (not from 0): 14.40 and 14.56 dB stay apart
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        path = out_dir / f"{m}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


#: the grid's cells are brought to at least this many pixels a side (nearest, by an integer factor)
CELL_PIXELS = 128


def _resolved(path: str, run_dir: object) -> Path:
    """A path of a record: absolute as written, or relative to the record's folder (records of older versions)."""
    path = Path(str(path))
    return path if path.is_absolute() or not isinstance(run_dir, str) else Path(run_dir) / path


def sample_grid(jobs: pd.DataFrame, out_dir: Path, rows: int = 6) -> list[Path]:
    """Per dataset: rows = the same inputs; columns = the input as drawn for the grid (where the run kept it), the
    real image, the exemplar, the ground-truth translation where the dataset has one (the synthetic ``target``),
    then each model's output. A dataset whose reference folder is missing is skipped with a warning naming it."""
    paths = []
    done = jobs[(jobs["status"] == "completed") & jobs.get("files.samples", pd.Series(dtype=str)).notna()]
    for dataset, group in done.groupby("dataset"):
        group = group.sort_values(["model", "ablation", "seed"]).drop_duplicates(["model", "ablation"])
        first = group.iloc[0]
        reference = _resolved(first["files.reference"], first.get("run_dir"))
        names = sorted(p.stem for p in (reference / "exemplar").glob("*.png"))[:rows]
        if not names:
            log.warning(
                "no sample grid for %s: its reference folder %s holds no exemplars", dataset, reference / "exemplar"
            )
            continue
        columns, titles = [], []
        inputs = next((_resolved(j["files.eval"], j.get("run_dir")) / "inputs" for _, j in group.iterrows()
                       if isinstance(j.get("files.eval"), str)), None)  # fmt: skip
        if inputs is not None and inputs.is_dir():
            columns.append([inputs / f"{n}.png" for n in names])
            titles.append("input")
        columns += [[reference / "image" / f"{input_id_of(n)}.png" for n in names],
                    [reference / "exemplar" / f"{n}.png" for n in names]]  # fmt: skip
        titles += ["real", "exemplar"]
        if (reference / "target").is_dir():
            columns.append([reference / "target" / f"{n}.png" for n in names])
            titles.append("target")
        titles += [j.model + ("" if j.ablation == "none" else f" {j.ablation}") for j in group.itertuples()]
        for _, job in group.iterrows():
            samples = _resolved(job["files.samples"], job.get("run_dir"))
            columns.append([next(iter(samples.glob(f"{n}.*")), None) for n in names])
        tiles = [[_load(p) for p in col] for col in columns]
        size = next(t for col in tiles for t in col if t is not None).shape
        blank = np.zeros(size, dtype=np.uint8)
        grid = np.concatenate([np.concatenate([t if t is not None else blank for t in col], 0) for col in tiles], 1)
        scale = max(1, -(-CELL_PIXELS // size[1]))
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
        path = out_dir / f"samples_{dataset}.png"
        _with_titles(grid, titles, size[1] * scale).save(path)
        paths.append(path)
    return paths


def _lines(title: str, chars: int) -> list[str]:
    """``title`` in lines of at most ``chars`` characters, broken between words; a word longer than a line is
    broken after an underscore, and cut only when a part of it is still too long."""
    lines: list[str] = []
    for word in title.split():
        if lines and len(lines[-1]) + 1 + len(word) <= chars:
            lines[-1] += " " + word
            continue
        parts = [word] if len(word) <= chars else [p + "_" for p in word.split("_")[:-1]] + [word.split("_")[-1]]
        lines.append("")
        for part in parts:
            if lines[-1] and len(lines[-1]) + len(part) > chars:
                lines.append("")
            lines[-1] += part[: chars - len(lines[-1])]
    return lines


def _with_titles(grid: np.ndarray, titles: list[str], width: int) -> Image.Image:
    """The grid with each column's caption (up to two lines, broken between words) on a white band above it."""
    from PIL import ImageDraw

    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + 28), "white")
    canvas.paste(Image.fromarray(grid), (0, 28))
    draw = ImageDraw.Draw(canvas)
    for i, title in enumerate(titles):
        for line, text in enumerate(_lines(title, max(1, width // 6))[:2]):
            draw.text((i * width + 2, 1 + 13 * line), text, fill="black")
    return canvas


def _load(path: Path | None) -> np.ndarray | None:
    if path is None or not Path(path).exists():
        return None
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
