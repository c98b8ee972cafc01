"""The aggregate of a benchmark: results.csv, table.md (mean ± std over seeds), plots, published numbers.

Reads results files only. Written into ``benchmarks/results/<name>/<date>/``:

- ``results.csv``: one row per job, every metric and protocol field, run id, status, error;
- ``table.md``: per model × dataset × ablation, mean ± std over seeds of the headline metrics, the best
  of each column in bold, each metric's direction in its header; then the published numbers side by side;
- ``plots/<metric>.png``: a bar chart per metric; ``plots/samples_<dataset>.png``: the same inputs
  across models.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from midms.files import atomic_write_text
from midms.metrics.base import input_id_of
from midms.record import UNSTARTED_ERROR, RecordError, effective_status, iter_records, unstarted_jobs
from midms.resources import bench_dir

log = logging.getLogger(__name__)
PUBLISHED = bench_dir() / "reference" / "published.csv"
HEADLINE = ["fid", "kid", "swd", "psnr", "ssim", "lpips", "lpips_diversity", "semantic", "style_color",
            "style_texture", "style_global", "matching_accuracy"]  # fmt: skip
GROUP = ["model", "dataset", "ablation"]
FID_IMPL = {"clean": "clean-fid", "legacy_pytorch": "pytorch-fid", "legacy_tensorflow": "tensorflow-fid"}


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}{k}.", v, out)
    else:
        out[prefix[:-1]] = value if not isinstance(value, list) else json.dumps(value)


def collect_jobs(runs_dir: str | Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """Rows of every job (metrics as columns, protocol fields as ``protocol.*``) and the metric directions."""
    rows, directions = [], {}
    for path, rec in iter_records(runs_dir):
        if isinstance(rec, RecordError):
            rows.append({"run_dir": str(path.parent), "status": "failed", "error": str(rec)})
            continue
        row = {k: getattr(rec, k) for k in ("status", *GROUP, "seed", "config_hash", "experiment", "started")}
        row["status"] = effective_status(rec, path.parent)
        row.update(run_dir=str(path.parent), wandb_id=rec.wandb_id)
        row["error"] = rec.error.splitlines()[0] if rec.error else None
        row.update(rec.metrics)
        row["skipped"] = "; ".join(sorted(rec.skipped)) or None
        _flatten("protocol.", rec.protocol, row)
        row.update({f"files.{k}": v for k, v in rec.files.items()})
        directions.update(rec.directions)
        rows.append(row)
    rows += [{"run_dir": str(p), "status": "failed", "error": UNSTARTED_ERROR} for p in unstarted_jobs(runs_dir)]
    return latest_per_job(pd.DataFrame(rows)), directions


def latest_per_job(jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: a job re-run (``--force``, a retry after a failure) leaves its earlier folder
    behind; only the newest run of each ``config_hash`` counts, so no seed is counted twice."""
    if "config_hash" not in jobs or "started" not in jobs:
        return jobs
    keyed = jobs[jobs["config_hash"].notna()].sort_values("started", kind="stable", na_position="first")
    newest = keyed.drop_duplicates(subset="config_hash", keep="last")
    return pd.concat([newest, jobs[jobs["config_hash"].isna()]]).sort_index().reset_index(drop=True)


def summary_table(jobs: pd.DataFrame, directions: dict[str, str]) -> pd.DataFrame:
    """Mean and std over seeds of the headline metrics, per model × dataset × ablation (completed jobs)."""
    done = jobs[jobs["status"] == "completed"] if "status" in jobs else jobs
    metrics = [m for m in HEADLINE if m in done.columns and done[m].notna().any()]
    if done.empty or not metrics:
        return pd.DataFrame(columns=GROUP)
    grouped = done.groupby(GROUP, dropna=False)[metrics]
    table = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=1).add_suffix("_std"))
    table["seeds"] = done.groupby(GROUP, dropna=False).size()
    table.attrs["metrics"] = metrics
    table.attrs["directions"] = {m: directions.get(m, "higher") for m in metrics}
    return table.reset_index()


def _format_table(table: pd.DataFrame) -> str:
    metrics = table.attrs.get("metrics", [])
    if not metrics:
        return "_no completed job with metric values_\n"
    arrows = {"higher": "↑", "lower": "↓"}
    header = [*GROUP, "seeds", *[f"{m} {arrows[table.attrs['directions'][m]]}" for m in metrics]]
    best = {}
    for m in metrics:  # best per dataset, by the metric's direction
        col = table[f"{m}_mean"]
        pick = col.groupby(table["dataset"]).transform("max" if table.attrs["directions"][m] == "higher" else "min")
        best[m] = (col == pick) & col.notna()
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, r in table.iterrows():
        cells = [str(r[g]) for g in GROUP] + [str(int(r["seeds"]))]
        for m in metrics:
            mean, std = r[f"{m}_mean"], r[f"{m}_std"]
            text = "—" if pd.isna(mean) else f"{mean:.4g}" + ("" if pd.isna(std) else f" ± {std:.2g}")
            cells.append(f"**{text}**" if best[m].iloc[i] else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def our_protocol(jobs: pd.DataFrame) -> dict[str, str]:
    """The protocol fields that published rows state, as recorded by our jobs (first completed job)."""
    row = jobs.iloc[0]
    size = row.get("protocol.image_size")
    return {
        "fid_impl": FID_IMPL.get(str(row.get("protocol.metrics.fid.mode")), "unknown"),
        "format": str(row.get("protocol.image_format")),
        "size": str(int(size)) if pd.notna(size) else "unknown",  # a float column when some jobs failed
    }


def published_comparison(jobs: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Our value, the published value and their difference where the protocol matches."""
    rows = []
    done = jobs[jobs["status"] == "completed"] if "status" in jobs else jobs
    for _, pub in published.iterrows():
        ours = done[(done["model"] == pub["method"]) & (done["dataset"] == pub["dataset"])]
        ours = ours[ours["ablation"] == "none"] if "ablation" in ours else ours
        value = ours[pub["metric"]].mean() if pub["metric"] in ours and not ours.empty else math.nan
        stated = dict(kv.split("=", 1) for kv in str(pub["protocol"]).split(";") if "=" in kv)
        if ours.empty or math.isnan(value):
            verdict = "not run"
        elif not stated:
            verdict = "protocol unknown"
        else:
            mine = our_protocol(ours)
            verdict = "protocol matches" if all(mine.get(k) == v for k, v in stated.items()) else "protocol differs"
        diff = value - pub["value"] if verdict == "protocol matches" else math.nan
        rows.append(
            {
                "method": pub["method"],
                "dataset": pub["dataset"],
                "metric": pub["metric"],
                "ours": value,
                "published": pub["value"],
                "difference": diff,
                "comparison": verdict,
                "published protocol": pub["protocol"],
                "source": pub["source"],
                "verified": pub["verified"],
            }
        )
    return pd.DataFrame(rows)


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
    """Per dataset: rows = the same inputs; columns = real image, exemplar, then each model's output."""
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


def write_benchmark_report(
    runs_dir: str | Path,
    out_dir: str | Path,
    name: str,
    published: Path = PUBLISHED,
    config_hashes: set[str] | None = None,
) -> Path:
    """The aggregate of ``runs_dir``; with ``config_hashes`` only the jobs of the matrix as it is now (runs of
    an earlier version of the matrix stay on disk but are not averaged with the current ones)."""
    out_dir = Path(out_dir)
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    jobs, directions = collect_jobs(runs_dir)
    if config_hashes is not None and "config_hash" in jobs:
        jobs = jobs[jobs["config_hash"].isin(config_hashes) | jobs["config_hash"].isna()].reset_index(drop=True)
    if jobs.empty:
        atomic_write_text(out_dir / "table.md", f"# Benchmark {name}\n\nNo job has results yet.\n")
        return out_dir
    atomic_write_text(out_dir / "results.csv", jobs.to_csv(index=False))
    table = summary_table(jobs, directions)
    comparison = published_comparison(jobs, pd.read_csv(published)) if published.exists() else pd.DataFrame()
    failed = jobs[jobs["status"] != "completed"]
    text = [
        f"# Benchmark `{name}`\n",
        f"{len(jobs)} jobs, {len(failed)} failed. Mean ± std over seeds; best per dataset in bold.\n",
        _format_table(table),
    ]
    if not failed.empty:
        text += ["\n## Failed jobs\n", failed[[*GROUP, "seed", "error"]].to_markdown(index=False) + "\n"]
    if not comparison.empty:
        text += ["\n## Published numbers\n", comparison.to_markdown(index=False, floatfmt=".4g") + "\n"]
    atomic_write_text(out_dir / "table.md", "\n".join(text))
    if not comparison.empty:
        atomic_write_text(out_dir / "published_comparison.csv", comparison.to_csv(index=False))
    if not table.empty:
        atomic_write_text(out_dir / "summary.csv", table.to_csv(index=False))
        bar_charts(table, out_dir / "plots")
    sample_grid(jobs, out_dir / "plots")
    return out_dir
