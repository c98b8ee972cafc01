"""`make gpu-smoke` on a CPU: the code path it runs on a GPU, at tiny sizes; without CUDA it refuses clearly."""

from __future__ import annotations

import pytest
import torch

from benchmarks import gpu_smoke


def test_without_cuda_it_says_so(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_smoke.main(["--device", "cuda"]) == 2
    assert "no CUDA device" in caplog.text


@pytest.mark.slow
def test_the_smoke_run_measures_each_model_on_a_cpu(tmp_path, capsys):
    out = tmp_path / "smoke.md"
    args = ["--device", "cpu", "--size", "tiny", "--image-size", "64", "--batch", "1", "--precision", "fp32"]
    assert gpu_smoke.main([*args, "--out", str(out)]) == 0
    rows = [
        line.split("|")[1:-1] for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line
    ]
    assert [r[0].strip() for r in rows[1:]] == ["spade", "cocosnet", "midms"]
    for row in rows[1:]:
        train, translate, peak = (float(v) for v in row[2:])
        assert 0 < train < 1000 and 0 < translate < 1000 and peak > 100  # one image a step on two cores: not 1e9
    assert out.read_text() in capsys.readouterr().out
