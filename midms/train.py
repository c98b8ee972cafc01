"""``midms-train`` (and ``python run.py``): one job, or a sweep with ``-m``, composed by Hydra from ``midms.conf``.

All logic lives in :mod:`midms.runner`; this module only hands Hydra's config to it and turns failed jobs into
the exit code. The runner (and with it torch and Lightning, seconds of imports) is imported once the config has
composed, so a mistake in the command line is reported at once.
"""

from __future__ import annotations

import sys
import warnings

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="pkg://midms.conf", config_name="config")
def _run(cfg: DictConfig) -> float:
    from midms import runner

    return runner.run(cfg)


def main() -> None:
    # conf/hydra/launcher/submitit_*.yaml refine the plugin's configs and are checked against its schema
    warnings.filterwarnings("ignore", message=".*is validated against ConfigStore schema.*")
    _run()
    # a failed job leaves results.json with the error and the sweep goes on; the exit code still says so
    runner = sys.modules.get("midms.runner")
    sys.exit(1 if runner is not None and runner.FAILED_JOBS else 0)


if __name__ == "__main__":
    main()
