"""Figures of a report: a bar chart per metric (mean ± std over seeds) and a grid of the same inputs across
models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from midms.metrics.base import input_id_of


def bar_charts(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    labels = [
        f"{r.model}\n{r.dataset}" + ("" if r.ablation == "none" else f"\n{r.ablation}") for r in table.itertuples()
    ]
    for m in table.attrs.get("metrics", []):
        fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(table)), 3.5))
        ax.bar(labels, table[f"{m}_mean"], yerr=table[f"{m}_std"].fillna(0), capsize=4, color="#4c72b0")
        arrow = "higher" if table.attrs["directions"][m] == "higher" else "lower"
        ax.set_title(f"{m} ({arrow} is better)")
        fig.tight_layout()
        path = out_dir / f"{m}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def sample_grid(jobs: pd.DataFrame, out_dir: Path, rows: int = 6) -> list[Path]:
    """Per dataset: rows = the same inputs; columns = real image, exemplar, the ground-truth translation where the
    dataset has one (the synthetic ``target``), then each model's output."""
    paths = []
    done = jobs[(jobs["status"] == "completed") & jobs.get("files.samples", pd.Series(dtype=str)).notna()]
    for dataset, group in done.groupby("dataset"):
        group = group.sort_values(["model", "ablation", "seed"]).drop_duplicates(["model", "ablation"])
        reference = Path(group.iloc[0]["files.reference"])
        names = sorted(p.stem for p in (reference / "exemplar").glob("*.png"))[:rows]
        if not names:
            continue
        columns = [
            [reference / "image" / f"{input_id_of(n)}.png" for n in names],
            [reference / "exemplar" / f"{n}.png" for n in names],
        ]
        titles = ["real", "exemplar"]
        if (reference / "target").is_dir():
            columns.append([reference / "target" / f"{n}.png" for n in names])
            titles.append("target")
        titles += [j.model + ("" if j.ablation == "none" else f" {j.ablation}") for j in group.itertuples()]
        for _, job in group.iterrows():
            samples = Path(job["files.samples"])
            columns.append([next(iter(samples.glob(f"{n}.*")), None) for n in names])
        tiles = [[_load(p) for p in col] for col in columns]
        size = next(t for col in tiles for t in col if t is not None).shape
        blank = np.zeros(size, dtype=np.uint8)
        grid = np.concatenate([np.concatenate([t if t is not None else blank for t in col], 0) for col in tiles], 1)
        path = out_dir / f"samples_{dataset}.png"
        _with_titles(grid, titles, size[1]).save(path)
        paths.append(path)
    return paths


def _with_titles(grid: np.ndarray, titles: list[str], width: int) -> Image.Image:
    """The grid with each column's caption (up to two lines) on a white band above it."""
    from PIL import ImageDraw

    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + 28), "white")
    canvas.paste(Image.fromarray(grid), (0, 28))
    draw = ImageDraw.Draw(canvas)
    chars = max(1, width // 6)
    for i, title in enumerate(titles):
        for line, k in enumerate(range(0, min(len(title), 2 * chars), chars)):
            draw.text((i * width + 2, 1 + 13 * line), title[k : k + chars], fill="black")
    return canvas


def _load(path: Path | None) -> np.ndarray | None:
    if path is None or not Path(path).exists():
        return None
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
