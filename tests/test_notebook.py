"""The comparison notebook runs headless against a tiny benchmark's output, and is committed without outputs."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "compare_runs.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)


def test_notebook_executes_on_a_benchmark_output(tmp_path, monkeypatch):
    from e2e import write_fake_runs
    from nbclient import NotebookClient

    from midms.reporting.benchmark_report import write_benchmark_report

    runs = tmp_path / "runs"
    write_fake_runs(runs)
    out = write_benchmark_report(runs, tmp_path / "bench" / "2026-01-01", "tiny")
    monkeypatch.setenv("MIDMS_RESULTS", str(tmp_path / "bench"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "2 jobs: {'completed': 2}" in text and "1 plots shown" in text
    assert (out / "plots" / "psnr.png").exists()
