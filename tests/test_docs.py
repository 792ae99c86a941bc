"""The documentation site builds with `mkdocs build --strict` (broken links, missing API
objects and bad pages fail), its command-line reference covers every command, its
notebook pages show their figures, and every measured figure in README.md and docs/ is
the one benchmarks/results/ holds (benchmarks/render_docs.py --check)."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from warp_phys._cli import cli


ROOT = Path(__file__).parents[1]
TEST_COMMAND = ('python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]" '
                '&& python -m pytest -q')


def _render_docs():
    spec = importlib.util.spec_from_file_location("render_docs", ROOT / "benchmarks" / "render_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_is_a_product_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert TEST_COMMAND in readme  # .ci/run greps for it
    assert "<!-- results: fit-output fit-msd-quick -->" in readme


def test_figures_match_benchmark_results():
    """README.md and docs/*.md hold every measured figure in a region filled from the JSON;
    `python benchmarks/render_docs.py` rewrites them after a benchmark is re-run."""
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "render_docs.py"), "--check"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_figure_edited_by_hand_is_caught():
    render_docs = _render_docs()
    readme = (ROOT / "README.md").read_text()
    regions = list(render_docs.INLINE.finditer(readme))
    blocks = list(render_docs.BLOCK.finditer(readme))
    assert len(regions) >= 10 and blocks  # the results table and the main job's output
    inline = regions[0]
    edited = readme[:inline.start("value")] + "9" + inline.group("value") + readme[inline.end("value"):]
    fixed, stale = render_docs.render(edited, "README.md")
    assert len(stale) == 1 and fixed == readme
    block = blocks[0]
    body = block.group("body")
    edited = readme[:block.start("body")] + body.replace("MSE 0.", "MSE 1.", 1) + readme[block.end("body"):]
    assert body != edited[block.start("body"):block.end("body")]
    fixed, stale = render_docs.render(edited, "README.md")
    assert len(stale) == 1 and fixed == readme


def test_docs_pages_show_their_figures():
    for page, image in (("analysis.md", "images/pca-msd-quick.png"),
                        ("studies.md", "images/study-msd-quick-distance.png")):
        assert f"]({image})" in (ROOT / "docs" / page).read_text()
        assert (ROOT / "docs" / image).is_file()


def test_cli_reference_covers_every_command():
    documented = set(re.findall(r"<!-- warp-phys (\w+) --help -->", (ROOT / "docs" / "cli.md").read_text()))
    commands = set(cli().commands)
    assert documented == commands


@pytest.mark.skipif(shutil.which("mkdocs") is None and not (Path(sys.prefix) / "bin" / "mkdocs").exists(),
                    reason="mkdocs is not installed (pip install -e '.[dev]')")
def test_docs_build_strict(tmp_path):
    mkdocs = shutil.which("mkdocs") or str(Path(sys.prefix) / "bin" / "mkdocs")
    site = tmp_path / "site"
    result = subprocess.run([mkdocs, "build", "--strict", "-d", str(site)], cwd=ROOT,
                            capture_output=True, text=True,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    cli = (site / "cli" / "index.html").read_text()
    assert "Usage: warp-phys plot [OPTIONS]" in cli  # the hook ran the CLI's --help
    api = (site / "api" / "index.html").read_text()
    assert "weight_trajectories" in api and "make_warp" in api
    for notebook in ("01_quickstart", "02_weight_trajectories", "03_define_your_own_system",
                     "04_ood_study"):
        page = (site / "notebooks" / notebook / "index.html").read_text()
        assert "data:image/png" in page, f"{notebook}: no figure in the built page (not executed?)"
    for page, image in (("analysis", "pca-msd-quick.png"), ("studies", "study-msd-quick-distance.png")):
        assert f'src="../images/{image}"' in (site / page / "index.html").read_text()
        assert (site / "images" / image).is_file()
    results = re.sub(r"<!--.*?-->", "", (site / "results" / "index.html").read_text())
    assert "test-ood  MSE" in results  # the main job's output, filled from the JSON
    assert f"test MSE {_render_docs().figure('fit-sine-paper-n10:splits.test-id.mse', '.3g')}" in results
