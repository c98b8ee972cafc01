"""``midms-train`` (and ``python run.py``): one job, or a sweep with ``-m``, composed by Hydra from ``midms.conf``.

All logic lives in :mod:`midms.runner`; this module only hands Hydra's config to it and turns failed jobs into
the exit code. The runner (and with it torch and Lightning, seconds of imports) is imported once the config has
composed, so a mistake in the command line is reported at once.
"""

from __future__ import annotations

import logging
import math
import sys
import warnings

import hydra
from omegaconf import DictConfig

from midms import timing  # noqa: F401  (first: its clock is the process's start)
from midms.config_check import check_option_types
from midms.errors import UserError

log = logging.getLogger("midms.train")
BAD_CONFIGS: list[str] = []  # jobs refused for a wrong option value (exit status 2)


@hydra.main(version_base="1.3", config_path="pkg://midms.conf", config_name="config")
def _run(cfg: DictConfig) -> float:
    try:
        check_option_types(cfg)
    except UserError as e:  # before the runner's imports and any file is written
        log.error("%s", e)
        BAD_CONFIGS.append(str(e))
        return math.nan
    from midms import runner

    return runner.run(cfg)


def main() -> None:
    # conf/hydra/launcher/submitit_*.yaml refine the plugin's configs and are checked against its schema
    warnings.filterwarnings("ignore", message=".*is validated against ConfigStore schema.*")
    _run()
    # a failed job leaves results.json with the error and the sweep goes on; the exit code still says so
    if BAD_CONFIGS:
        sys.exit(2)
    runner = sys.modules.get("midms.runner")
    sys.exit(1 if runner is not None and runner.FAILED_JOBS else 0)


if __name__ == "__main__":
    main()
