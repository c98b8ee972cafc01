"""``python -m midms.report <folder>`` (or ``midms-report``): a table of every job's results under a folder.

Prints the table and writes ``report.csv`` and ``report.md`` into the folder (a multirun folder, a
benchmark folder, or a single run's folder). ``midms-report --wandb entity/project [--group G] --out DIR``
makes the same table from a team's W&B runs through the public API.
"""

from __future__ import annotations

import argparse
import logging
import sys

import pandas as pd

from midms.reporting.table import collect, collect_wandb, write_tables

log = logging.getLogger("midms.report")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="midms-report", description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", help="a multirun or run folder, or any folder holding results.json files")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read the runs of a W&B project instead")
    parser.add_argument("--group", help="with --wandb: only this group (a sweep or benchmark name)")
    parser.add_argument("--out", help="where to write the tables (default: the folder; with --wandb: .)")
    parser.add_argument("--stem", default="report", help="file name of the written tables (default: report)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if bool(args.folder) == bool(args.wandb):
        parser.error("give a results folder or --wandb ENTITY/PROJECT (one of the two)")
    try:
        df = collect_wandb(args.wandb, args.group) if args.wandb else collect(args.folder)
    except Exception as e:  # the W&B API raises its own errors (no network, no login, no such project)
        log.error("cannot read %s: %s", args.wandb or args.folder, e)
        return 2
    if df.empty:
        where = args.wandb or args.folder
        log.error("no results under %s: is it a run or multirun folder, or a W&B project with runs?", where)
        return 2
    csv_path, md_path = write_tables(df, args.out or args.folder or ".", args.stem)
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
