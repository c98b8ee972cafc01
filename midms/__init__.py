"""MIDMs benchmark suite: exemplar-based image translation, trained and evaluated one way.

See ``../shared/DESIGN.md`` (or the README) for the layout and the contracts between data, models,
evaluation and tracking.
"""

__version__ = "0.1.0"
