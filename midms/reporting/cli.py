"""``midms-report <folder>``: the report of every job under a folder (a run, a sweep or a benchmark's runs), or
``midms-report --wandb entity/project [--group G]`` of a team's W&B runs; the same tables either way.

Writes ``results.csv``, ``table.md``, ``summary.csv``, the published comparison and the plots into ``--out``
(default: ``<folder>/report``, or ``./report`` with ``--wandb``) and prints ``table.md``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from midms.reporting.collect import collect_jobs, collect_wandb
from midms.reporting.tables import write_report

log = logging.getLogger("midms.report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="midms-report",
        description="The report of every job under a folder (a run, a sweep or a benchmark's runs), or of a W&B "
        "project's runs: results.csv, table.md, summary.csv, the published comparison and plots; table.md is printed.",
    )
    parser.add_argument("folder", nargs="?", help="a run, sweep or benchmark folder holding results.json files")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read the runs of a W&B project instead")
    parser.add_argument("--group", help="with --wandb: only this group (a sweep or benchmark name)")
    parser.add_argument("--out", help="where to write the report (default: <folder>/report; with --wandb: ./report)")
    parser.add_argument(
        "--publish-workspace",
        action="store_true",
        help="also save a W&B workspace of these runs (their W&B groups): a bar panel per headline metric by model "
        "and ablation, the training curves, the sample grids, a runs table of eval/*; needs `wandb login` and the "
        "runs synced (`wandb sync`); the spec is written to <out>/wandb_workspace.json either way",
    )
    return parser


def publish(jobs, info, out: Path, name: str) -> bool:
    """Write the workspace spec of ``jobs`` and save it online; False (with the reason logged) when it cannot."""
    from midms.tracking.loggers import wandb_mode
    from midms.tracking.workspace import publish_workspace, workspace_spec

    try:
        spec = workspace_spec(f"sweep {Path(name).name}", jobs, info)
    except ValueError as e:
        log.error("no workspace: %s", e)
        return False
    online = wandb_mode(None) == "online"
    url = publish_workspace(spec, out, online=online)
    if online and url is None:
        return False
    if not online:
        log.warning("W&B is offline here (no login): the workspace spec is written, not saved")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if bool(args.folder) == bool(args.wandb):
        parser.error("give a results folder or --wandb ENTITY/PROJECT (one of the two)")
    where = args.wandb or args.folder
    try:
        jobs, info = collect_wandb(args.wandb, args.group) if args.wandb else collect_jobs(args.folder)
    except Exception as e:  # the W&B API raises its own errors (no network, no login, no such project)
        log.error("cannot read %s: %s", where, e)
        return 2
    if jobs.empty:
        log.error("no results under %s: is it a run or sweep folder, or a W&B project with runs?", where)
        return 2
    out = Path(args.out or (Path(args.folder) / "report" if args.folder else "report"))
    title = f"Report of {where}" + (f" (group {args.group})" if args.group else "")
    write_report(jobs, info, out, title)
    sys.stdout.write((out / "table.md").read_text())
    sys.stdout.flush()
    log.info("report written to %s", out)
    if args.publish_workspace and not publish(jobs, info, out, args.group or where):
        return 2
    not_done = int((jobs["status"] != "completed").sum())
    if not_done:
        log.warning("%d of %d jobs did not complete (see 'Jobs not completed')", not_done, len(jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
