"""Files that ship with the package: the Hydra configs (``conf/``, importable as ``midms.conf``) and the
benchmark definitions (``benchmarks/``: matrices and published numbers, as ``midms.benchmarks``).

They are found through the package, so an installed wheel finds them as a checkout does; ``pyproject.toml``
maps the two top-level folders into the package.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

CONF_MODULE = "midms.conf"
BENCH_MODULE = "midms.benchmarks"


def conf_dir() -> Path:
    """The folder of ``config.yaml`` and its groups."""
    return Path(str(files(CONF_MODULE)))


def bench_dir() -> Path:
    """The folder of the benchmark matrices (``<name>.yaml``) and ``reference/published.csv``."""
    return Path(str(files(BENCH_MODULE)))
