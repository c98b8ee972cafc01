"""The suite's tables: mean ± std over seeds per model × dataset × ablation, with each metric's direction,
the jobs that did not complete, and the published numbers where our protocol matches theirs.

:func:`write_report` writes them for any set of jobs (a sweep, a benchmark, a W&B project):

- ``results.csv``: one row per job (:mod:`midms.reporting.collect`);
- ``table.md``: the summary table (the best of each column per dataset in bold), then the jobs that failed or
  were interrupted with their error, then the published numbers side by side;
- ``summary.csv`` and ``published_comparison.csv``: the same as data;
- ``plots/<metric>.png``: a bar chart per metric; ``plots/samples_<dataset>.png``: the same inputs across
  models (:mod:`midms.reporting.plots`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pandas as pd

from midms.files import atomic_write_text
from midms.reporting.plots import bar_charts, sample_grid
from midms.resources import bench_dir

log = logging.getLogger(__name__)
PUBLISHED = bench_dir() / "reference" / "published.csv"
GROUP = ["model", "dataset", "ablation"]
#: the results files' keys of a value's own uncertainty: ``<metric>_ci95`` (bootstrap), ``<metric>_subset_std`` (KID)
UNCERTAINTY_SUFFIXES = ("_ci95", "_subset_std")


NOTES = (
    "± std over seeds; [± x]: the metric's own 95 % interval half-width over images (bootstrap; KID: the std over "
    "its subsets), mean over seeds; ≈: within noise of the best (the two intervals overlap); †: computed on fewer "
    "images than the metric's stable minimum."
)


def _uncertainty_column(jobs: pd.DataFrame, metric: str) -> str | None:
    return next((f"{metric}{s}" for s in UNCERTAINTY_SUFFIXES if f"{metric}{s}" in jobs.columns), None)


def _too_few_images(jobs: pd.DataFrame, metric: str) -> pd.Series:
    """Per job: the value's record states a stable minimum number of images and it ran on fewer."""
    minimum, count = (f"metric_info.{metric}.{k}" for k in ("stable_min_images", "num_images"))
    if minimum not in jobs or count not in jobs:
        return pd.Series(False, index=jobs.index)
    return pd.to_numeric(jobs[count], errors="coerce") < pd.to_numeric(jobs[minimum], errors="coerce")


def headline(info: dict[str, dict]) -> list[str]:
    """The value keys that are summary-table columns, as their metrics declared (:class:`~midms.metrics.base.
    ValueInfo`), in the order the records list them."""
    return [key for key, entry in info.items() if entry.get("headline")]


def summary_table(jobs: pd.DataFrame, info: dict[str, dict]) -> pd.DataFrame:
    """Mean and std over seeds of the headline metrics, per model × dataset × ablation (completed jobs), with
    each metric's own uncertainty (``<metric>_unc``, mean over seeds) and whether it ran on too few images
    (``<metric>_few``). ``info``: the records' ``metric_info`` (direction and headline of each value key)."""
    done = jobs[jobs["status"] == "completed"] if "status" in jobs else jobs
    metrics = [m for m in headline(info) if m in done.columns and done[m].notna().any()]
    if done.empty or not metrics:
        return pd.DataFrame(columns=GROUP)
    grouped = done.groupby(GROUP, dropna=False)[metrics]
    table = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=1).add_suffix("_std"))
    by_group = done.groupby(GROUP, dropna=False)
    for m in metrics:
        column = _uncertainty_column(done, m)
        if column is not None:
            table[f"{m}_unc"] = by_group[column].mean()
        table[f"{m}_few"] = _too_few_images(done, m).groupby([done[g] for g in GROUP], dropna=False).any()
    table["seeds"] = by_group.size()
    table.attrs["metrics"] = metrics
    table.attrs["directions"] = {m: info[m]["direction"] for m in metrics}
    return table.reset_index()


def format_summary(table: pd.DataFrame) -> str:
    metrics = table.attrs.get("metrics", [])
    if not metrics:
        return "_no completed job with metric values_\n"
    arrows = {"higher": "↑", "lower": "↓"}
    header = [*GROUP, "seeds", *[f"{m} {arrows[table.attrs['directions'][m]]}" for m in metrics]]
    best, near = {}, {}
    for m in metrics:  # best per dataset, by the metric's direction
        col = table[f"{m}_mean"]
        pick = col.groupby(table["dataset"]).transform("max" if table.attrs["directions"][m] == "higher" else "min")
        best[m] = (col == pick) & col.notna()
        near[m] = _within_noise_of_best(table, m, best[m])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, r in table.iterrows():
        cells = [str(r[g]) for g in GROUP] + [str(int(r["seeds"]))]
        for m in metrics:
            mean, std, unc = r[f"{m}_mean"], r[f"{m}_std"], r.get(f"{m}_unc")
            text = "—" if pd.isna(mean) else f"{mean:.4g}" + ("" if pd.isna(std) else f" ± {std:.2g}")
            text += "" if pd.isna(mean) or unc is None or pd.isna(unc) else f" [± {unc:.2g}]"
            text = f"**{text}**" if best[m].iloc[i] else ("≈ " + text if near[m].iloc[i] else text)
            few = r.get(f"{m}_few")
            cells.append(text + (" †" if few is not None and not pd.isna(few) and bool(few) else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _within_noise_of_best(table: pd.DataFrame, metric: str, best: pd.Series) -> pd.Series:
    """Rows (not the best) whose interval, mean ± the metric's own uncertainty, overlaps the best's of their dataset."""
    if f"{metric}_unc" not in table:
        return pd.Series(False, index=table.index)
    mean, unc = table[f"{metric}_mean"], table[f"{metric}_unc"]
    out = pd.Series(False, index=table.index)
    for i in table.index[best]:
        same = (table["dataset"] == table.at[i, "dataset"]) & ~best
        out |= same & ((mean - mean.at[i]).abs() <= unc + unc.at[i])
    return out


def our_protocol(jobs: pd.DataFrame, metric: str) -> dict[str, str]:
    """The protocol fields that published rows state, as recorded by our jobs (first completed job): the metric's
    implementation (``impl``, as its record declares it), the image format and the image size."""
    row = jobs.iloc[0]
    size = row.get("protocol.image_size")
    impl = row.get(f"metric_info.{metric}.implementation")
    return {
        "impl": str(impl) if isinstance(impl, str) else "unknown",
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
            mine = our_protocol(ours, pub["metric"])
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


def write_report(
    jobs: pd.DataFrame, info: dict[str, dict], out_dir: str | Path, title: str, published: Path = PUBLISHED
) -> Path:
    """Write the tables and plots of ``jobs`` into ``out_dir``; returns it."""
    out_dir = Path(out_dir)
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    if jobs.empty:
        atomic_write_text(out_dir / "table.md", f"# {title}\n\nNo job has results yet.\n")
        return out_dir
    atomic_write_text(out_dir / "results.csv", jobs.to_csv(index=False))
    table = summary_table(jobs, info)
    comparison = published_comparison(jobs, pd.read_csv(published)) if published.exists() else pd.DataFrame()
    status = jobs["status"].value_counts()
    not_done = jobs[jobs["status"] != "completed"]
    text = [
        f"# {title}\n",
        f"{len(jobs)} jobs: {status.get('completed', 0)} completed, {status.get('failed', 0)} failed, "
        f"{status.get('interrupted', 0)} interrupted, {status.get('running', 0)} running. "
        f"Mean over seeds; best per dataset in bold. {NOTES}\n",
        format_summary(table),
    ]
    if not not_done.empty:
        columns = [c for c in ("job", *GROUP, "seed", "status", "error") if c in not_done]
        text += ["\n## Jobs not completed\n", not_done[columns].to_markdown(index=False) + "\n"]
    if not comparison.empty:
        text += ["\n## Published numbers\n", comparison.to_markdown(index=False, floatfmt=".4g") + "\n"]
    atomic_write_text(out_dir / "table.md", "\n".join(text))
    if not comparison.empty:
        atomic_write_text(out_dir / "published_comparison.csv", comparison.to_csv(index=False))
    if not table.empty:
        atomic_write_text(out_dir / "summary.csv", table.to_csv(index=False))
        bar_charts(table, out_dir / "plots")
    if "files.samples" in jobs:
        sample_grid(jobs, out_dir / "plots")
    return out_dir
