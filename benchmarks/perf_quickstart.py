"""Wall time, stages, scores and peak memory of `make run` (the quickstart): from an empty cache, then cached.

    python benchmarks/perf_quickstart.py [overrides...]

Runs ``run.py`` twice in fresh processes with isolated log and cache folders and W&B offline: first from an empty
cache (the prior stage trains and is cached, the reference images are written), then again with that cache, as a
researcher's second run. Each run's wall time is set against its budget (60 s, 30 s), its stages come from the
job's ``results.json`` (``times``), its PSNR and matching accuracy are set against the scores the quickstart must
keep (15.70 dB, 0.67), and its peak memory (the run's own VmHWM, ``benchmarks/memory.py``) against 4 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks.memory import run_with_peak_rss  # noqa: E402

#: wall-time budgets of the two runs, seconds
BUDGET_S = {"empty_cache": 60.0, "cached": 30.0}
BUDGET_GIB = 4.0
#: the scores the quickstart must keep while it gets faster
SCORE_FLOORS = {"psnr": 15.70, "matching_accuracy": 0.67}


def _one_run(overrides: list[str], env: dict[str, str], logs: Path) -> dict[str, Any]:
    start = time.perf_counter()
    proc, peak_mib = run_with_peak_rss([sys.executable, str(ROOT / "run.py"), *overrides], cwd=ROOT, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"quickstart failed:\n{proc.stderr[-3000:]}")
    newest = max(logs.glob("runs/*/results.json"), key=lambda p: p.stat().st_mtime)
    record = json.loads(newest.read_text())
    metrics = record.get("metrics", {})
    scores = {k: metrics.get(k) for k in SCORE_FLOORS}
    return {"wall_s": wall, "peak_rss_gib": peak_mib / 1024, "times": record.get("times", {}), "scores": scores}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", help="Hydra overrides for the run")
    args = p.parse_args(argv)
    result: dict[str, Any] = {"budget_s": BUDGET_S, "budget_gib": BUDGET_GIB, "score_floors": SCORE_FLOORS}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MIDMS_LOGS": f"{tmp}/logs", "MIDMS_CACHE": f"{tmp}/cache", "WANDB_MODE": "offline"}
        env["WANDB_SILENT"] = "true"
        for run in BUDGET_S:
            result[run] = _one_run(args.overrides, env, Path(tmp) / "logs")
    for run, budget in BUDGET_S.items():
        r = result[run]
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["times"].items() if k != "total")
        scores = ", ".join(f"{k} {v} (floor {SCORE_FLOORS[k]})" for k, v in r["scores"].items())
        label = run.replace("_", " ")
        print(f"quickstart, {label}: {r['wall_s']:.1f} s ({r['wall_s'] / budget:.2f} of {budget:.0f} s); "
              f"stages (s): {stages}; {scores}; peak RSS {r['peak_rss_gib']:.2f} GiB")  # fmt: skip
    return result


if __name__ == "__main__":
    main()
