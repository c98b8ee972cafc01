"""``python -m midms.report <folder>`` (or ``midms-report``): a table of every job's results under a folder.

Prints the table and writes ``report.csv`` and ``report.md`` into the folder (a multirun folder, a
benchmark folder, or a single run's folder).
"""

from __future__ import annotations

import argparse
import logging
import sys

import pandas as pd

from midms.reporting.table import collect, write_tables

log = logging.getLogger("midms.report")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="midms-report", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a multirun folder, a run folder, or any folder holding results.json files")
    parser.add_argument("--stem", default="report", help="file name of the written tables (default: report)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        df = collect(args.folder)
    except OSError as e:
        log.error("cannot read %s: %s", args.folder, e)
        return 2
    if df.empty:
        log.error(
            "no results.json under %s: is it a run or multirun folder (logs/runs/..., logs/multiruns/...)?", args.folder
        )
        return 2
    csv_path, md_path = write_tables(df, args.folder, args.stem)
    with pd.option_context("display.max_columns", None, "display.width", 200):
        sys.stdout.write(df.to_string(index=False) + "\n")
        sys.stdout.flush()
    log.info("wrote %s and %s", csv_path, md_path)
    failed = int((df["status"] == "failed").sum())
    if failed:
        log.warning("%d of %d jobs failed (see the error column)", failed, len(df))
    return 0


if __name__ == "__main__":
    sys.exit(main())
