"""Every notebook is a page of the documentation site, and the site build executes it top
to bottom at small size (mkdocs-jupyter, `execute: true`, `allow_errors: false`): a cell
that raises, or one of the notebooks' own asserts, fails `test_docs_build_strict`. Running
them here as well would run each twice."""

from pathlib import Path

import yaml


ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.py"))


def _nav_pages(nav) -> list[str]:
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_notebook_is_executed_by_the_docs_build():
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    pages = _nav_pages(config["nav"])
    assert [p.stem for p in NOTEBOOKS][:1] == ["01_quickstart"]
    assert [f"notebooks/{p.name}" for p in NOTEBOOKS] == [p for p in pages if p.startswith("notebooks/")]
    jupyter = next(p["mkdocs-jupyter"] for p in config["plugins"] if isinstance(p, dict) and "mkdocs-jupyter" in p)
    assert jupyter["execute"] == "true" and jupyter["allow_errors"] == "false"
