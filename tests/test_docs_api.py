"""Every example of ``docs/api.md`` runs, in order, in a folder laid out as the examples expect."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from midms.record import RunRecord

ROOT = Path(__file__).resolve().parents[1]


def test_every_example_of_the_api_page_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "api.md").read_text(), flags=re.S)
    assert len(blocks) == 4
    rng = np.random.default_rng(0)
    for folder in ("outs", "real", "gt"):  # another codebase's outputs, the real photos, the ground truth
        (tmp_path / folder).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / folder / f"{i}.png")
    record = RunRecord(status="completed", metrics={"psnr": 15.0},
                       metric_info={"psnr": {"metric": "psnr", "direction": "higher", "headline": True}})  # fmt: skip
    record.write(tmp_path / "logs" / "runs" / "quickstart" / "results.json")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)  # noqa: S102 - the page's own examples
    printed = capsys.readouterr().out.splitlines()
    assert printed[1] == "{}" and printed[0].endswith(" higher")  # psnr and ssim ran: nothing skipped
    assert namespace["record"].status == "completed" and (tmp_path / "runs" / "copy" / "eval" / "pairs.csv").exists()
    assert namespace["scores"].num_images == 8  # score_folder re-scored the folder evaluate() wrote
