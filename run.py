"""Entry point: ``python run.py [overrides]`` or ``python run.py -m model=a,b dataset=...`` (a sweep).

All logic lives in :mod:`midms.runner`; this file only hands Hydra's config to it.
"""

import sys
import warnings

import hydra
from omegaconf import DictConfig

from midms import runner


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    return runner.run(cfg)


if __name__ == "__main__":
    # conf/hydra/launcher/submitit_*.yaml refine the plugin's configs and are checked against its schema
    warnings.filterwarnings("ignore", message=".*is validated against ConfigStore schema.*")
    main()
    # a failed job leaves results.json with the error and the sweep goes on; the exit code still says so
    sys.exit(1 if runner.FAILED_JOBS else 0)
