"""launch/colab.ipynb runs top to bottom on CPU through a notebook executor, as a Colab user would run it."""

import os
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, "launch", "colab.ipynb")


@pytest.mark.slow
def test_notebook_runs_on_cpu_and_plots(tmp_path, monkeypatch):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  # The kernel inherits this environment: CPU only, and a fresh workdir.
  monkeypatch.setenv("AR3PO_WORKDIR", str(tmp_path / "workdir"))
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  monkeypatch.setenv("AR3PO_ACCELERATOR", "cpu")
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  start = time.time()
  nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": os.path.join(REPO, "launch")}}).execute()
  seconds = time.time() - start
  print(f"notebook ran in {seconds:.0f} s")
  assert seconds < 600
  outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
  text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
  assert "accelerator: cpu" in text and "requirements already installed" in text
  assert "ar3po: accuracy" in text and "grpo" not in text.split("ar3po: accuracy")[1]
  assert any("image/png" in o.get("data", {}) for o in outputs), "the accuracy plot is missing"
  assert os.path.isfile(tmp_path / "workdir" / "ar3po" / "metrics.jsonl")
