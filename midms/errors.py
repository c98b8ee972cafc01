"""User-facing errors: one paragraph saying what is wrong, where, and how to fix it."""


class UserError(Exception):
    """A mistake in the user's input (config, data, files), not a bug in the suite.

    The entry points print only the message (no traceback) and exit non-zero.
    """


class MetricSkipped(Exception):
    """Raised by a metric that cannot run here, e.g. because its pretrained weights are absent.

    The message is the reason recorded in ``results.json`` under ``skipped``; it names what is
    missing and the one-line fix.
    """
