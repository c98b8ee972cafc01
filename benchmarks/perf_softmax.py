"""The correlation softmax at MIDMs' temperature: ``sharp_softmax`` against ``torch.softmax`` on the same logits.

    python benchmarks/perf_softmax.py [--repeats 20]

A low-temperature correlation's logits span 1 / temperature (200 at MIDMs' 0.005); most of a row's shifted logits
fall below -87, where float32 ``exp`` underflows and the CPU's vectorised ``exp`` takes a slow path per element.
:func:`midms.nn.correspondence.sharp_softmax` raises them to 80 below the row's maximum first. Measured on clamped
cosine correlations of the tiny model's 16×16 latents (batch 16: 16×256×256) and of the paper size's 64×64 latents
(one 1024-row block: 1×1024×4096), the median of ``--repeats`` calls each; the baseline is ``torch.softmax`` in the
same run. The weights must equal the plain softmax's wherever those are above e^-80 of the row's largest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks.perf_official import median_seconds  # noqa: E402
from midms.models.midms.matching import TEMPERATURE  # noqa: E402
from midms.nn.correspondence import SOFTMAX_FLOOR, sharp_softmax  # noqa: E402

SHAPES = {"tiny 16x16 latents, batch 16": (16, 256, 256), "paper 64x64 latents, one block": (1, 1024, 4096)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args(argv)
    rows = []
    for label, shape in SHAPES.items():
        corr = torch.rand(shape, generator=torch.Generator().manual_seed(0))
        logits = corr / TEMPERATURE
        plain_s = median_seconds(lambda logits=logits: torch.softmax(logits, dim=-1), args.repeats)
        sharp_s = median_seconds(lambda logits=logits: sharp_softmax(logits), args.repeats)
        kept = logits - logits.amax(-1, keepdim=True) > -SOFTMAX_FLOOR
        equal = bool(torch.equal(sharp_softmax(logits)[kept], torch.softmax(logits, dim=-1)[kept]))
        rows.append({"shape": label, "softmax_s": plain_s, "sharp_s": sharp_s, "speedup": plain_s / sharp_s,
                     "equal_where_representable": equal})  # fmt: skip
        print(f"{label} {tuple(shape)}: softmax {plain_s * 1e3:.2f} ms, sharp_softmax {sharp_s * 1e3:.2f} ms "
              f"({plain_s / sharp_s:.2f}x); equal where representable: {equal}")  # fmt: skip
    return {"rows": rows, "temperature": TEMPERATURE}


if __name__ == "__main__":
    main()
