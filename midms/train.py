"""``midms-train`` (and ``python run.py``): one job, or a sweep with ``-m``, composed by Hydra from ``midms.conf``.

All logic lives in :mod:`midms.runner`; this module only hands Hydra's config to it and turns failed jobs into
the exit code.
"""

from __future__ import annotations

import sys
import warnings

import hydra
from omegaconf import DictConfig

from midms import runner


@hydra.main(version_base="1.3", config_path="pkg://midms.conf", config_name="config")
def _run(cfg: DictConfig) -> float:
    return runner.run(cfg)


def main() -> None:
    # conf/hydra/launcher/submitit_*.yaml refine the plugin's configs and are checked against its schema
    warnings.filterwarnings("ignore", message=".*is validated against ConfigStore schema.*")
    _run()
    # a failed job leaves results.json with the error and the sweep goes on; the exit code still says so
    sys.exit(1 if runner.FAILED_JOBS else 0)


if __name__ == "__main__":
    main()
