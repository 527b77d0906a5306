"""The quick-start notebook runs top to bottom and shows what it promises."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def _text(cell: nbformat.NotebookNode, stream: str = "stdout") -> str:
    """What a code cell printed on ``stream`` plus its plain-text results."""
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream" and output.name == stream:
            parts.append(output.text)
        elif stream == "stdout" and output.output_type == "execute_result":
            parts.append(output.data.get("text/plain", ""))
    return "".join(parts)


def test_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, cell.source[:80]


@pytest.mark.slow
def test_quickstart_runs_top_to_bottom_in_this_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # One extra cell, in memory only: which interpreter ran the kernel.
    notebook.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)"))
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working directory
    )
    client.execute()  # raises CellExecutionError, with the traceback, if a cell fails

    *cells, interpreter = [cell for cell in notebook.cells if cell.cell_type == "code"]
    # jupyter_client starts the "python3" kernelspec with this process's sys.executable.
    assert _text(interpreter).strip() == sys.prefix
    stdout = "".join(_text(cell) for cell in cells)
    stderr = "".join(_text(cell, "stderr") for cell in cells)
    assert "Warning" not in stderr, stderr
    assert "8 CPU devices for ALDA" in stdout
    assert "Rank: 1, Condition: 1.00" in stdout
    assert "dominant period 11.0 years" in stdout
    assert "identical on all 8 topologies: True" in stdout
    assert "rank 8, condition" in stdout
    assert "digest: " in stdout
    assert "published: ['1']" in stdout and "serving ops version 1" in stdout
    assert "tritonclient agrees: True" in stdout
    assert 'liam_requests_total{model="ops",status="200",version="1"} 2.0' in stdout
    assert "jax imported: False" in stdout and "edge matches the server: True" in stdout
    assert "server exit status 0" in stdout
    figures = [
        output
        for cell in cells
        for output in cell.outputs
        if output.output_type == "display_data" and "image/png" in output.data
    ]
    assert len(figures) == 3
