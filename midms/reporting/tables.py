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
#: the run protocol's fields that change what a metric measures: runs that differ in one are never pooled or ranked
#: together (the pairs evaluated, their number, the output format, and each metric's implementation and settings)
PROTOCOL_FIELDS = ("protocol.dataset_key", "protocol.num_images", "protocol.image_format")
METRIC_SETTINGS = ("mode", "weights", "feature_extractor", "feature_space", "regions", "net", "version", "k")
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


def protocol_columns(jobs: pd.DataFrame) -> list[str]:
    """The columns of the jobs table that make up a run's comparable protocol (:data:`PROTOCOL_FIELDS`, each metric's
    declared implementation and its settings among :data:`METRIC_SETTINGS`)."""
    settings = [
        c for c in jobs.columns if c.startswith("protocol.metrics.") and c.rsplit(".", 1)[-1] in METRIC_SETTINGS
    ]
    impls = [c for c in jobs.columns if c.startswith("metric_info.") and c.endswith(".implementation")]
    return [c for c in PROTOCOL_FIELDS if c in jobs.columns] + sorted(settings) + sorted(impls)


def protocol_labels(jobs: pd.DataFrame) -> tuple[pd.Series, dict[str, str]]:
    """Per job, a label of its comparable protocol (``P1``, ``P2``, ... in order of appearance), and per label what
    sets it apart: the values of the fields that differ between the protocols of one dataset."""
    columns = protocol_columns(jobs)
    if not columns:
        return pd.Series("P1", index=jobs.index), {}
    keys = jobs[columns].map(str).agg(" | ".join, axis=1)
    labels = {key: f"P{i}" for i, key in enumerate(dict.fromkeys(keys), 1)}
    described: dict[str, str] = {}
    for _dataset, group in jobs.groupby("dataset", dropna=False):
        differing = [c for c in columns if group[c].map(str).nunique() > 1]
        for key, rows in group.groupby(keys[group.index]):
            first = rows.iloc[0]
            described[labels[key]] = ", ".join(f"{c.removeprefix('protocol.')}={first[c]}" for c in differing)
    return keys.map(labels), described


def summary_table(jobs: pd.DataFrame, info: dict[str, dict]) -> pd.DataFrame:
    """Mean and std over seeds of the headline metrics, per model × dataset × ablation (completed jobs) and per
    comparable protocol (``protocol``: runs on other pairs, another number of images or other metric settings are
    never pooled), with each metric's own uncertainty (``<metric>_unc``, mean over seeds) and whether it ran on too
    few images (``<metric>_few``). ``info``: the records' ``metric_info`` (direction and headline of each value)."""
    done = jobs[jobs["status"] == "completed"] if "status" in jobs else jobs
    metrics = [m for m in headline(info) if m in done.columns and done[m].notna().any()]
    if done.empty or not metrics:
        return pd.DataFrame(columns=GROUP)
    done = done.copy()
    done["protocol"], described = protocol_labels(done)
    keys = [*GROUP, "protocol"]
    grouped = done.groupby(keys, dropna=False)[metrics]
    table = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=1).add_suffix("_std"))
    by_group = done.groupby(keys, dropna=False)
    for m in metrics:
        column = _uncertainty_column(done, m)
        if column is not None:
            table[f"{m}_unc"] = by_group[column].mean()
        table[f"{m}_few"] = _too_few_images(done, m).groupby([done[g] for g in keys], dropna=False).any()
    table["seeds"] = by_group.size()
    table.attrs["metrics"] = metrics
    table.attrs["directions"] = {m: info[m]["direction"] for m in metrics}
    table.attrs["protocols"] = {label: text for label, text in described.items() if text}
    return table.reset_index()


def _decimals(values: pd.Series) -> int:
    """One precision per column: four significant digits of its largest magnitude."""
    largest = values.abs().max()
    if pd.isna(largest) or largest == 0:
        return 4
    return int(min(6, max(0, 3 - math.floor(math.log10(largest)))))


def format_summary(table: pd.DataFrame) -> str:
    metrics = table.attrs.get("metrics", [])
    if not metrics:
        return "_no completed job with metric values_\n"
    arrows = {"higher": "↑", "lower": "↓"}
    protocols = table.attrs.get("protocols") or {}
    shown = [*GROUP, *(["protocol"] if protocols else [])]
    header = [*shown, "seeds", *[f"{m} {arrows[table.attrs['directions'][m]]}" for m in metrics]]
    best, near = {}, {}
    within = [table["dataset"], table["protocol"]] if "protocol" in table else [table["dataset"]]
    for m in metrics:  # best per dataset and protocol, by the metric's direction
        col = table[f"{m}_mean"]
        pick = col.groupby(within).transform("max" if table.attrs["directions"][m] == "higher" else "min")
        best[m] = (col == pick) & col.notna()
        near[m] = _within_noise_of_best(table, m, best[m])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    decimals = {m: _decimals(table[f"{m}_mean"]) for m in metrics}
    for i, r in table.iterrows():
        cells = [str(r[g]) for g in shown] + [str(int(r["seeds"]))]
        for m in metrics:
            mean, std, unc, d = r[f"{m}_mean"], r[f"{m}_std"], r.get(f"{m}_unc"), decimals[m]
            text = "—" if pd.isna(mean) else f"{mean:.{d}f}" + ("" if pd.isna(std) else f" ± {std:.{d}f}")
            text += "" if pd.isna(mean) or unc is None or pd.isna(unc) else f" [± {unc:.{d}f}]"
            text = f"**{text}**" if best[m].iloc[i] else ("≈ " + text if near[m].iloc[i] else text)
            few = r.get(f"{m}_few")
            cells.append(text + (" †" if few is not None and not pd.isna(few) and bool(few) else ""))
        lines.append("| " + " | ".join(cells) + " |")
    if protocols:  # rows of one dataset under other protocols are neither pooled nor ranked together
        lines += ["", "Protocols (ranked within each; never pooled): "
                  + "; ".join(f"{label}: {text}" for label, text in protocols.items()) + "."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _within_noise_of_best(table: pd.DataFrame, metric: str, best: pd.Series) -> pd.Series:
    """Rows (not the best) whose interval, mean ± the metric's own uncertainty, overlaps the best's of their dataset."""
    if f"{metric}_unc" not in table:
        return pd.Series(False, index=table.index)
    mean, unc = table[f"{metric}_mean"], table[f"{metric}_unc"]
    out = pd.Series(False, index=table.index)
    for i in table.index[best]:
        same = (table["dataset"] == table.at[i, "dataset"]) & ~best
        if "protocol" in table:
            same &= table["protocol"] == table.at[i, "protocol"]
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
    """Our value, the published value and their difference where the protocol matches: only for the datasets the jobs
    ran on, and one row per comparable protocol of ours (runs under different protocols are never averaged)."""
    rows = []
    done = jobs[jobs["status"] == "completed"] if "status" in jobs else jobs
    done = done.assign(protocol=protocol_labels(done)[0]) if not done.empty else done
    for _, pub in published[published["dataset"].isin(set(done.get("dataset", [])))].iterrows():
        ours = done[(done["model"] == pub["method"]) & (done["dataset"] == pub["dataset"])]
        ours = ours[ours["ablation"] == "none"] if "ablation" in ours else ours
        stated = dict(kv.split("=", 1) for kv in str(pub["protocol"]).split(";") if "=" in kv)
        for _, same in ours.groupby("protocol") if not ours.empty else [(None, ours)]:
            value = same[pub["metric"]].mean() if pub["metric"] in same and not same.empty else math.nan
            if same.empty or math.isnan(value):
                verdict = "not run"
            elif not stated:
                verdict = "protocol unknown"
            else:
                mine = our_protocol(same, pub["metric"])
                verdict = "protocol matches" if all(mine.get(k) == v for k, v in stated.items()) else "protocol differs"
            rows.append(
                {
                    "method": pub["method"],
                    "dataset": pub["dataset"],
                    "metric": pub["metric"],
                    "ours": value,
                    "published": pub["value"],
                    "difference": value - pub["value"] if verdict == "protocol matches" else math.nan,
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
        bar_charts(table, out_dir / "plots", jobs[jobs["status"] == "completed"], info)
    if "files.samples" in jobs:
        sample_grid(jobs, out_dir / "plots")
    return out_dir
