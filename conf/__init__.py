"""The Hydra configs, shipped inside the package as ``midms.conf`` (see ``midms/resources.py``)."""
