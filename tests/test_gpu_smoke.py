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
    assert [r[0].strip() for r in rows[1:4]] == ["spade", "cocosnet", "midms"]
    for row in rows[1:4]:
        train, translate, peak = (float(v) for v in row[2:])
        assert 0 < train < 1000 and 0 < translate < 1000 and peak > 100  # one image a step on two cores: not 1e9
    parts = [r for r in rows if r[0].strip().startswith(("UNet", "autoencoder", "correlation"))]
    assert [r[0].strip() for r in parts] == ["UNet (noise prediction)", "autoencoder (encode + decode)",
                                             "correlation + soft warp"]  # fmt: skip
    for part in parts:
        gflop, ms, tflops = (float(v) for v in part[2:5])
        assert gflop > 0 and tflops == pytest.approx(
            gflop / ms, rel=0.1, abs=2e-3
        )  # the table rounds and part[5].strip() == "n/a"
    assert out.read_text() in capsys.readouterr().out


def test_achieved_flops_count_a_matrix_product_as_two_m_k_n():
    a, b = torch.randn(64, 32), torch.randn(32, 16)
    flops, seconds = gpu_smoke.achieved(lambda: a @ b, torch.device("cpu"))
    assert flops == 2 * 64 * 32 * 16 and seconds > 0


def test_the_peak_is_the_datasheet_figure_of_the_named_device(monkeypatch):
    cuda = torch.device("cuda", 0)
    names = iter(["NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H200", "Some Other GPU"])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: next(names))
    # NVIDIA datasheets, dense: H100 SXM5 fp32 67 / bf16 989 TFLOP/s, H100 PCIe 51 / 756, H200 as H100 SXM5
    assert gpu_smoke.device_peak(cuda, "bf16") == 989.0
    assert gpu_smoke.device_peak(cuda, "fp32") == 51.0
    assert gpu_smoke.device_peak(cuda, "bf16") == 989.0
    assert gpu_smoke.device_peak(cuda, "fp32") is None
    assert gpu_smoke.device_peak(torch.device("cpu"), "fp32") is None
