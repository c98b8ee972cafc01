"""Generated stand-ins for the real data and independent reference implementations, for the tests, the
benchmarks under ``benchmarks/`` and trying the pipeline without the real datasets. Nothing here is used by a
training or evaluation run."""
