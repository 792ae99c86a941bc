"""MkDocs hook: the command-line reference is the CLI's own `--help`, so it cannot drift.

A page line `<!-- warp-phys COMMAND --help -->` becomes that command's help text.
"""

import re

from typer.testing import CliRunner

from warp_phys._cli import app


MARKER = re.compile(r"^<!-- warp-phys ?(\w*) --help -->$", re.MULTILINE)


def _help(command: str) -> str:
    result = CliRunner().invoke(app, [command, "--help"] if command else ["--help"],
                                prog_name="warp-phys", env={"COLUMNS": "100", "NO_COLOR": "1"},
                                terminal_width=100)
    if result.exit_code != 0:
        raise RuntimeError(f"warp-phys {command} --help failed: {result.output}")
    return f"```text\n{result.output.rstrip()}\n```"


def on_page_markdown(markdown, page, config, files):
    return MARKER.sub(lambda m: _help(m.group(1)), markdown)
