"""Wall time and peak memory of `make run` (the quickstart), against the budget of 2 min and 4 GiB.

    python benchmarks/perf_quickstart.py [overrides...]

Runs ``run.py`` in a fresh process with isolated log/cache folders (so the reference images are written
too, as on a first run) and W&B offline. Peak memory is the run's own VmHWM (see ``benchmarks/memory.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks.memory import run_with_peak_rss  # noqa: E402

BUDGET_S, BUDGET_GIB = 120.0, 4.0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", help="Hydra overrides for the run")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MIDMS_LOGS": f"{tmp}/logs", "MIDMS_CACHE": f"{tmp}/cache", "WANDB_MODE": "offline"}
        env["WANDB_SILENT"] = "true"
        start = time.perf_counter()
        proc, peak_mib = run_with_peak_rss([sys.executable, str(ROOT / "run.py"), *args.overrides], cwd=ROOT, env=env)
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"quickstart failed:\n{proc.stderr[-3000:]}")
    peak_gib = peak_mib / 1024
    result = {
        "wall_s": wall,
        "peak_rss_gib": peak_gib,
        "wall_vs_budget": wall / BUDGET_S,
        "rss_vs_budget": peak_gib / BUDGET_GIB,
    }
    print(f"quickstart: {wall:.1f} s ({result['wall_vs_budget']:.2f} of the 2 min budget), "
          f"peak RSS {peak_gib:.2f} GiB ({result['rss_vs_budget']:.2f} of 4 GiB)")  # fmt: skip
    return result


if __name__ == "__main__":
    main()
