"""``make perf``: every speed and memory benchmark, one table, each figure as a ratio to its baseline.

    python -m benchmarks.perf            # quick sizes (minutes on a 2-core CPU)
    python -m benchmarks.perf --full     # the sizes the issues name (SWD on 2,000 / 8,000 images, ...)
    python -m benchmarks.perf --only swd,fid_cache

Each benchmark module (``benchmarks/perf_*.py``) has ``main(argv) -> dict``; this runner calls them with
quick or full arguments, turns each result into rows (benchmark, measure, value, baseline, ratio) and
writes ``benchmarks/results/perf/<timestamp>.{csv,md}``. Baselines are measured in the same run (or are
the stated budget, for the quickstart).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

log = logging.getLogger("benchmarks.perf")
OUT = Path(__file__).resolve().parent / "results" / "perf"


def _row(bench: str, measure: str, value: float, baseline: float | None = None, note: str = "") -> dict[str, Any]:
    ratio = value / baseline if baseline else None
    return {"benchmark": bench, "measure": measure, "value": value, "baseline": baseline, "ratio": ratio, "note": note}


def _swd(r: dict) -> list[dict]:
    rows = []
    if "numpy_s" in r:
        rows.append(_row("swd", "torch CPU speed-up over numpy/scipy", r["speedup_cpu"], 1.0, "target >= 2"))
        rows.append(_row("swd", "max relative difference torch vs numpy", r["max_rel_diff"], None, "target < 0.02"))
    for n, child in sorted(r.get("rss", {}).items(), key=lambda kv: int(kv[0])):
        rows.append(_row("swd", f"peak RSS MiB at {n} images", child["peak_rss_mib"], child["baseline_rss_mib"]))
    if "cuda_images_per_s" in r:
        rows.append(_row("swd", "CUDA images/s", r["cuda_images_per_s"], None, r["cuda_device"]))
    return rows


def _fid_cache(r: dict) -> list[dict]:
    return [
        _row("fid_cache", "first evaluation s (reference stats computed)", r["first_s"], r["cached_mean_s"]),
        _row("fid_cache", "cached evaluation s", r["cached_mean_s"], r["first_s"], "ratio < 1: the cache saves"),
    ]


def _quickstart(r: dict) -> list[dict]:
    rows = []
    for run, budget in r["budget_s"].items():
        one, label = r[run], run.replace("_", " ")
        rows.append(_row("quickstart", f"wall s, {label}", one["wall_s"], budget, f"budget {budget:.0f} s"))
        for stage, seconds in one["times"].items():
            if stage != "total":
                rows.append(_row("quickstart", f"{stage} s, {label}", seconds, one["wall_s"], "share of the wall time"))
        for name, value in one["scores"].items():
            floor = r["score_floors"][name]
            rows.append(_row("quickstart", f"{name}, {label}", value, floor, f"at least {floor}"))
        rows.append(_row("quickstart", f"peak RSS GiB, {label}", one["peak_rss_gib"], r["budget_gib"], "budget"))
    return rows


def _training_step(r: dict) -> list[dict]:
    return [
        _row("training_step", f"{name} step s, batch {r['batch']} at {r['image_size']} px, channels-last",
             r[name]["channels_last_s"], r[name]["contiguous_s"], "baseline: the contiguous (NCHW) layout")
        for name in ("autoencoder", "warmup")
    ]  # fmt: skip


def _softmax(r: dict) -> list[dict]:
    return [
        _row("softmax", f"sharp_softmax s, {row['shape']}", row["sharp_s"], row["softmax_s"],
             f"baseline: torch.softmax at temperature {r['temperature']}; equal where representable: "
             f"{row['equal_where_representable']}")
        for row in r["rows"]
    ]  # fmt: skip


def _celebahq_edges(r: dict) -> list[dict]:
    rates = {(row["split"], row["mode"], row["workers"]): row["samples_per_s"] for row in r["rows"]}
    rows = [_row("celebahq_edges", "edge tensor ms a face", r["edge_tensor_ms"])]
    for (split, mode, workers), rate in rates.items():
        base = rates.get((split, "no cache", 0))
        rows.append(_row("celebahq_edges", f"{split} samples/s, {mode}, {workers} workers", rate, base))
    return rows


def _midms(r: dict) -> list[dict]:
    rows = []
    for row in r["sampling"]:
        loop = row["naive_loop"]
        for v in row["variants"]:
            name = v["precision"] + (", channels-last" if v["channels_last"] else "")
            label = f"{r['size']} {r['image_size']} px, {r['schedule']}, batch {row['batch']}, {name}"
            rows.append(_row("midms", f"sampling img/s, {label}", v["images_per_s"], loop["images_per_s"],
                             "baseline: the same steps one image at a time, fp32"))  # fmt: skip
            rows.append(_row("midms", f"sampling peak MiB, {label}", v["peak_mib"], loop["peak_mib"]))
    for row in r["correlation"]:
        chunked, dense = row["chunked"], row["dense"]
        rows.append(_row("midms", f"64x64 correlation peak MiB, batch {row['batch']}", chunked["peak_mib"],
                         dense["peak_mib"], "baseline: the dense 4096x4096 correlation"))  # fmt: skip
    return rows


def _cocosnet(r: dict) -> list[dict]:
    rows = []
    for row in r["rows"]:
        label = f"{row['size']} {row['resolution']} px, batch {row['batch']}"
        rows.append(_row("cocosnet", f"train step s, {label}", row["step_s"]))
        rows.append(_row("cocosnet", f"inference img/s, {label}", row["infer_img_s"]))
        rows.append(_row("cocosnet", f"peak MiB, {label}", row["peak_mib"]))
    return rows


# on a GPU the full MIDMs run also measures autocast and channels-last (on a CPU without bf16 units they only
# cost time: about 15 min per variant at batch 16 on 2 cores)
_GPU_VARIANTS = ["--precision", "fp32", "bf16", "fp16", "--channels-last"] if torch.cuda.is_available() else []


def _eval_ranks(r: dict) -> list[dict]:
    equal = r["same_scores"] and r["same_samples"]
    note = f"{r['ranks']} gloo processes, {r['cpu_count']} cores; scores and files equal: {equal}"
    return [
        _row("eval_ranks", f"translation s, {r['images']} pairs, sharded", r["sharded_s"], r["one_process_s"], note),
        _row("eval_ranks", "speed-up over one process", r["speedup"], 1.0, "ratio > 1: ranks help"),
    ]


def _official(r: dict) -> list[dict]:
    """Ratios official / ours of median seconds (> 1: ours is faster), each with its target."""
    rows = []
    if "cocosnet" in r:
        c = r["cocosnet"]
        label = f"{c['resolution']} px, batch {c['batch']}, {r['threads']} threads"
        for what, target in (("inference", 1.5), ("training step", 1.2)):
            t = c[what]
            rows.append(_row("official", f"CoCosNet {what} speed-up, {label}", t["official_s"] / t["ours_s"], 1.0,
                             f"target >= {target}; outputs max |diff| {c['max_abs_diff']:.2g}"))  # fmt: skip
    if "midms" in r:
        m = r["midms"]
        t = m["inference"]
        rows.append(_row("official", f"MIDMs inference speed-up, {m['resolution']} px, {r['threads']} threads",
                         t["official_s"] / t["ours_s"], 1.0,
                         f"target >= 3; same-noise image max |diff| {m['image_diff']['max']:.2g}"))  # fmt: skip
    return rows


# name -> (module, quick argv, full argv, rows)
BENCHMARKS: dict[str, tuple[str, list[str], list[str], Callable[[dict], list[dict]]]] = {
    "swd": ("benchmarks.perf_swd", ["--images", "200", "--rss-sizes", "200", "800"], [], _swd),
    "fid_cache": ("benchmarks.perf_fid_cache", ["--runs", "3", "--num-images", "200"], ["--runs", "4"], _fid_cache),
    "celebahq_edges": ("benchmarks.perf_celebahq_edges", ["--faces", "8", "--workers", "0"], [], _celebahq_edges),
    "quickstart": ("benchmarks.perf_quickstart", [], [], _quickstart),
    "training_step": ("benchmarks.perf_training_step", [], ["--repeats", "5"], _training_step),
    "softmax": ("benchmarks.perf_softmax", ["--repeats", "5"], [], _softmax),
    "midms": (
        "benchmarks.perf_midms",
        ["--size", "tiny", "--image-size", "64", "--batch", "1", "4"],
        ["--batch", "1", "16", "--corr-batch", "1", "2", "4", "8", "16", *_GPU_VARIANTS],
        _midms,
    ),
    "cocosnet": ("benchmarks.perf_cocosnet", ["--sizes", "tiny", "--resolutions", "64"], [], _cocosnet),
    "eval_ranks": ("benchmarks.perf_eval_ranks", ["--images", "64"], ["--images", "512"], _eval_ranks),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.perf", description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="the full sizes of the issues (slow on a CPU)")
    p.add_argument("--only", help=f"comma-separated subset of {sorted(BENCHMARKS)}")
    p.add_argument("--official-cocosnet", type=Path, help="a checkout of microsoft/CoCosNet: adds the side-by-side")
    p.add_argument("--official-midms", type=Path, help="a checkout of cvlab-kaist/MIDMs: adds the side-by-side")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    official = [*(["--cocosnet", str(args.official_cocosnet)] if args.official_cocosnet else []),
                *(["--midms", str(args.official_midms)] if args.official_midms else [])]  # fmt: skip
    if official:  # benchmarks/perf_official.py: only with the official checkouts the user fetched
        BENCHMARKS["official"] = ("benchmarks.perf_official", official, [*official, "--repeats", "5"], _official)
        names = [*names, "official"] if "official" not in names else names
    rows: list[dict] = []
    for name in names:
        module, quick, full, to_rows = BENCHMARKS[name]
        log.info("running %s", name)
        start = time.perf_counter()
        try:
            result = importlib.import_module(module).main(full if args.full else quick)
            rows.extend(to_rows(result))
        except Exception as e:  # one broken benchmark is a row, not the end of the table
            log.error("%s failed:\n%s", name, traceback.format_exc())
            rows.append(_row(name, "FAILED", float("nan"), note=f"{type(e).__name__}: {e}"))
        log.info("%s took %.1f s", name, time.perf_counter() - start)
    table = pd.DataFrame(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    table.to_csv(OUT / f"{stamp}.csv", index=False)
    (OUT / f"{stamp}.md").write_text(table.to_markdown(index=False, floatfmt=".4g") + "\n")
    sys.stdout.write(table.to_markdown(index=False, floatfmt=".4g") + "\n")
    log.info("written to %s", OUT / f"{stamp}.md")
    return 1 if (table["measure"] == "FAILED").any() else 0


if __name__ == "__main__":
    sys.exit(main())
