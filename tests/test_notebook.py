"""notebooks/analysis.ipynb runs top to bottom on fake run folders and draws its figures."""

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "analysis.ipynb"


def _fake_runs():
    spec = importlib.util.spec_from_file_location("fake_runs", ROOT / "tests" / "report" / "fake_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_analysis_notebook_executes(tmp_path, monkeypatch):
    pytest.importorskip("ipykernel")
    _fake_runs().make_results(tmp_path / "results")
    monkeypatch.setenv("SURVEY_SIM_RESULTS", str(tmp_path / "results"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert "4 complete runs in 3 rows" in text and "skipped (incomplete)" in text and "5-truncated" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    # per split (2): jsd + accuracy + diversity; loss curves; items for 3 rows
    assert len(images) == 2 * 3 + 1 + 3
    assert any("tiny / ft" in o.get("data", {}).get("text/markdown", "") for o in outputs)
