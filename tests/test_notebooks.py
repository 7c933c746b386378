"""The walkthroughs in notebooks/ still run (a smaller version: TCA_NOTEBOOK_QUICK=1)."""
from pathlib import Path

import nbformat
import pytest

nbclient = pytest.importorskip("nbclient")

# What each walkthrough prints at its end when it worked (its last result).
EXPECTED = {"01_embed_and_search.ipynb": "1. sources/cup.mp4", "02_train_and_evaluate.ipynb": "no TCA"}
NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    monkeypatch.setenv("TCA_NOTEBOOK_QUICK", "1")
    nb = nbformat.read(path, as_version=4)
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "stored without outputs"
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any failure
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert EXPECTED[path.name] in text, text[-500:]


def test_there_are_two_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["01_embed_and_search.ipynb", "02_train_and_evaluate.ipynb"]
