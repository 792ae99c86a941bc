"""Every notebook runs top to bottom at small size; their own asserts check the results."""

import runpy
from pathlib import Path

import matplotlib
import pytest


NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("[0-9]*.py"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.setenv("WARP_PHYS_SMALL", "1")
    runpy.run_path(str(path), run_name="__main__")  # fails on any exception or assert
    matplotlib.pyplot.close("all")


def test_there_are_notebooks():
    assert [p.stem for p in NOTEBOOKS][:1] == ["01_quickstart"]
