# SPDX-License-Identifier: MIT
"""Crash-safe, private token files (D-60).

A token file is written to a temporary file in the same directory (created with mode 0600 by ``mkstemp``),
flushed to disk and moved over the old file with ``os.replace``. A reader therefore sees either the previous
complete file or the new complete file, never a partial one, and other users never get a window in which the
tokens are readable.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

#: Owner read/write only: the file holds access and refresh tokens.
TOKEN_FILE_MODE = 0o600
#: A directory created to hold token files is private as well.
TOKEN_DIR_MODE = 0o700


def write_private_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically with mode 0600; raise ``OSError`` on failure."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=TOKEN_DIR_MODE)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp already creates the file 0600; say so explicitly in case a platform differs.
        os.chmod(tmp_name, TOKEN_FILE_MODE)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    # Persist the rename itself (POSIX); directories cannot be opened this way on Windows, where it is moot.
    if os.name != "posix":  # pragma: no cover - POSIX CI
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - unreadable directory: the rename still happened
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
