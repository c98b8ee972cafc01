"""``benchmarks/perf_training_step.py``: each layout's step is the layout it names, and the rows of ``make perf``."""

from __future__ import annotations

import torch

from benchmarks import perf, perf_training_step


def test_the_two_layouts_are_timed_in_turns_and_reported_as_ratios(monkeypatch):
    seen: list[tuple[str, bool]] = []

    def timed(step, steps):
        cells = step.__closure__  # the step's networks: their first convolution tells the layout
        weights = [c.cell_contents for c in cells if isinstance(c.cell_contents, torch.nn.Module)]
        conv = next(m for w in weights for m in w.modules() if isinstance(m, torch.nn.Conv2d))
        nhwc = conv.weight.is_contiguous(memory_format=torch.channels_last)
        step()  # one real step in that layout
        seen.append((step.__name__, nhwc))
        return 0.2 if nhwc else 0.3

    monkeypatch.setattr(perf_training_step, "_timed", timed)
    result = perf_training_step.main(["--repeats", "1", "--image-size", "32"])
    assert seen == [("ae_step", False), ("warmup_step", False), ("ae_step", True), ("warmup_step", True)]
    for name in ("autoencoder", "warmup"):
        assert result[name] == {"contiguous_s": 0.3, "channels_last_s": 0.2, "speedup": 0.3 / 0.2}
    rows = perf._training_step(result)
    assert [r["ratio"] for r in rows] == [0.2 / 0.3, 0.2 / 0.3]
    assert "warmup step s, batch 16 at 32 px" in rows[1]["measure"]
