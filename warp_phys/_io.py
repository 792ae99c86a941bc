"""Crash-safe file writes (a temporary file beside the target, flushed to disk, then
renamed) and the checks on what is read back (checksums, one line naming a damaged file)."""

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call `write(file)` on a temporary file in `path`'s folder, then rename it to `path`,
    so a crash never leaves a truncated `path` behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it visible
        # mkstemp makes the file private (0600); give it the permissions open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:  # ENOSPC names no file: say which
            e.filename = str(path)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, data) -> None:
    """Write `data` as indented JSON, atomically."""
    atomic_write(path, lambda f: f.write((json.dumps(data, indent=2) + "\n").encode()))


def write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8), atomically."""
    atomic_write(path, lambda f: f.write(text.encode()))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_json(path: Path, *, fix: str) -> dict:
    """The JSON object in `path`; a file that does not parse (truncated, overwritten) is
    a `WarpPhysError` naming it and `fix`, what to do about it."""
    from ._errors import WarpPhysError

    try:
        data = json.loads(Path(path).read_bytes())
    except (UnicodeDecodeError, ValueError) as e:
        raise WarpPhysError(f"{path} is damaged (not valid JSON: {e}); {fix}") from None
    if not isinstance(data, dict):
        raise WarpPhysError(f"{path} is damaged (not a JSON object); {fix}")
    return data
