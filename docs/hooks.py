"""MkDocs hook: the command-line reference is the CLI's own `--help`, and every measured
figure is read from `benchmarks/results/`, so neither can drift.

A page line `<!-- warp-phys COMMAND --help -->` becomes that command's help text. The
marked regions of a page (`<!-- results: ... -->`, `<!--n ... -->`) are filled by
`benchmarks/render_docs.py`, the script that writes them into the Markdown files; a page
whose file is out of date with the JSON is a warning, so `mkdocs build --strict` fails.
"""

import importlib.util
import logging
import os
import re
from pathlib import Path

from warp_phys._cli import help_text


MARKER = re.compile(r"^<!-- warp-phys ?(\w*) --help -->$", re.MULTILINE)
log = logging.getLogger("mkdocs.hooks.warp_phys")


def _render_docs():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "render_docs.py"
    spec = importlib.util.spec_from_file_location("render_docs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render_docs = _render_docs()


def _help(command: str) -> str:
    return f"```text\n{help_text(command, width=100).rstrip()}\n```"


def on_config(config):
    # The notebook pages are executed when the site is built (mkdocs-jupyter, execute: true):
    # at small size unless the caller set WARP_PHYS_SMALL ("" for full size), with the
    # kernel's inline backend so that every figure lands in the page.
    os.environ.setdefault("WARP_PHYS_SMALL", "1")
    if os.environ.get("MPLBACKEND", "").lower() == "agg":
        del os.environ["MPLBACKEND"]
    return config


def on_page_markdown(markdown, page, config, files):
    markdown, stale = render_docs.render(markdown, page.file.src_path)
    for line in stale:
        log.warning("out of date with benchmarks/results (run python benchmarks/render_docs.py): %s", line)
    return MARKER.sub(lambda m: _help(m.group(1)), markdown)
