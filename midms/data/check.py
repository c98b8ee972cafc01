"""Verify a dataset's files before a run: ``python -m midms.data.check dataset=<name> [Hydra overrides]``.

Composes the project's Hydra config (``conf/``) with the given overrides, builds every split the datamodule
uses (train, val when configured, the evaluation split), decodes every file each split reads, and prints
a report: samples per split, missing files (the layout errors of the readers name them), unreadable files,
and the number of (input, exemplar) pairs the evaluation will use, with where the pairs come from.

Exit status: 0 when everything is readable; 1 when files are missing or unreadable (the run would skip the
unreadable ones and count them, or stop on the missing ones); 2 when the dataset root does not exist or the
configuration is wrong. ``make data-check DATASET=celebahq`` runs it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TextIO

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from midms.data.build import dataset_factory
from midms.data.images import DatasetRootMissing
from midms.errors import UserError
from midms.resources import conf_dir

log = logging.getLogger(__name__)


def compose_config(overrides: list[str]) -> DictConfig:
    """The project's root config with ``overrides``, as ``run.py`` would compose it (without a Hydra run dir)."""
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3", job_name="data_check"):
        return compose(config_name="config", overrides=overrides)


def _splits(cfg: DictConfig) -> list[tuple[str, str]]:
    """(role, split) for the splits the datamodule uses, without repeating a split."""
    dm = cfg.dataset.datamodule
    wanted = [("train", dm.get("train_split", "train")), ("val", dm.get("val_split", "val"))]
    wanted.append(("evaluation", dm.get("eval_split", "test")))
    seen: dict[str, str] = {}
    for role, split in wanted:
        if split is not None and split not in seen:
            seen[split] = role
    return [(role, split) for split, role in seen.items()]


def _by_kind(bad: dict[str, str]) -> dict[str, list[str]]:
    """Problem files grouped as 'missing <suffix> files' / 'unreadable <suffix> files'."""
    kinds: dict[str, list[str]] = {}
    for path, reason in sorted(bad.items()):
        state = "missing" if reason == "missing" else "unreadable"
        kinds.setdefault(f"{state} {Path(path).suffix or 'extension-less'} files", []).append(path)
    return kinds


def check(cfg: DictConfig, out: TextIO | None = None) -> int:
    """Build and scan every split of ``cfg.dataset``; print the report to ``out`` (stdout); return the exit status."""
    out = out if out is not None else sys.stdout
    factory = dataset_factory(cfg.dataset)
    root = cfg.dataset.get("root")
    print(f"dataset {cfg.dataset.name}" + (f" at {root}" if root else ""), file=out)
    status = 0
    rows: list[tuple[str, str, str, str]] = []
    eval_line = ""
    eval_split = cfg.dataset.datamodule.get("eval_split", "test")
    for role, split in _splits(cfg):
        try:
            dataset = factory(split=split)
        except DatasetRootMissing:
            raise
        except UserError as err:
            print(f"\n{role} split {split!r}: {err}", file=out)
            rows.append((split, role, "-", "missing files"))
            status = max(status, 1)
            continue
        bad: dict[str, str] = dataset.scan(thorough=True) if hasattr(dataset, "scan") else {}
        if hasattr(dataset, "bad_files"):  # also what the quick scan on construction already left out
            bad = {**dataset.bad_files.records, **bad}
        for path, reason in sorted(bad.items()):
            print(f"unreadable: {path} ({reason})", file=out)
        for kind, paths in _by_kind(bad).items():
            print(f"  {split}: {len(paths)} {kind}, e.g. {', '.join(paths[:3])}", file=out)
        if bad:
            status = max(status, 1)
        rows.append((split, role, str(len(dataset)), str(len(bad))))
        if split == eval_split:
            protocol = dataset.protocol()
            eval_line = f"evaluation: {len(dataset)} pairs ({protocol.get('pairing', 'pairing not recorded')}"
            if "pairs_from_file" in protocol:
                eval_line += f"; {protocol['pairs_from_file']} from the list, {protocol['pairs_seeded']} seeded"
            eval_line += ")"
            skipped = getattr(dataset, "unreadable_pairs", [])
            if skipped:
                eval_line += f", {len(skipped)} of them skipped (they read an unreadable file), e.g. {skipped[:3]}"
    print(f"\n{'split':<8} {'role':<11} {'samples':>8} {'unreadable':>11}", file=out)
    for split, role, count, bad_count in rows:
        print(f"{split:<8} {role:<11} {count:>8} {bad_count:>11}", file=out)
    if eval_line:
        print(eval_line, file=out)
    print("OK" if status == 0 else "problems found (see above)", file=out)
    return status


def build_parser() -> argparse.ArgumentParser:
    datasets = sorted(p.stem for p in (conf_dir() / "dataset").glob("*.yaml"))
    parser = argparse.ArgumentParser(
        prog="midms-data-check",
        description="Verify a dataset's files before a run: build every split the run uses, decode every file, and "
        "report samples per split, missing and unreadable files, and the evaluation pairs.",
        epilog="Exit status: 0 everything readable; 1 missing or unreadable files; 2 no dataset root or a wrong "
        "configuration. Example: midms-data-check dataset=celebahq dataset.root=/data/CelebAMask-HQ",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help=f"Hydra overrides of the run's config: dataset=<{'|'.join(datasets)}>, dataset.root=<folder> "
        "($MIDMS_DATA/<dataset> by default), or any dataset.* key",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    overrides = build_parser().parse_args(sys.argv[1:] if argv is None else argv).overrides
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = compose_config(overrides)
        return check(cfg)
    except (HydraException, OmegaConfBaseException) as err:
        print(f"error: the configuration does not compose: {err}", file=sys.stderr)
        return 2
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
