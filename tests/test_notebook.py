"""The comparison notebook runs headless on a folder of runs, through midms.reporting, committed without outputs."""

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

    runs = tmp_path / "runs"
    write_fake_runs(runs)
    monkeypatch.setenv("MIDMS_RESULTS", str(runs))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "2 jobs: {'completed': 2}" in text and "1 plots shown" in text  # psnr's bar chart
    markdown = "\n".join(
        str(o.get("data", {}).get("text/markdown", "")) for c in nb.cells for o in c.get("outputs", [])
    )
    assert "psnr ↑" in markdown and "21.00 ± 1.41" in markdown  # the package's table: mean ± std of 20 and 22
