"""Entry point: ``python run.py [overrides]`` or ``python run.py -m model=a,b dataset=...`` (a sweep).

The same as the installed ``midms-train`` command (:mod:`midms.train`).
"""

from midms.train import main

if __name__ == "__main__":
    main()
