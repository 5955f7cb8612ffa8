# SPDX-License-Identifier: MIT
"""Crash-safe, private token files: written atomically with mode 0600.

A token file is written to a temporary file in the same directory (created with mode 0600 by ``mkstemp``),
flushed to disk and moved over the old file with ``os.replace``. A reader therefore sees either the previous
complete file or the new complete file, never a partial one, and other users never get a window in which the
tokens are readable.

The token path itself is never followed when it is a symbolic link: a link planted there (pointing at a file
of the attacker's choosing, or at one the user did not mean to expose) would make the authoriser read tokens
from it or replace it. Reading opens with ``O_NOFOLLOW``; writing refuses before replacing. Either way the
caller gets an :class:`AuthoriserError` naming the path.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from .exception import AuthoriserError

#: Owner read/write only: the file holds access and refresh tokens.
TOKEN_FILE_MODE = 0o600
#: A directory created to hold token files is private as well.
TOKEN_DIR_MODE = 0o700


#: Open flags for reading a token file: never through a symlink, never blocking on a FIFO planted there.
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def _symlink_error(path: Path) -> AuthoriserError:
    return AuthoriserError(
        f"Refusing to use the token file {path}: it is a symbolic link. Remove the link, or set the token file "
        "path to the real file."
    )


def read_private(path: Path) -> bytes | None:
    """The content of the token file at ``path``; None when there is no regular file there.

    Raises :class:`AuthoriserError` when ``path`` is a symbolic link and ``OSError`` when it cannot be read.
    """
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError:
        if os.path.islink(path):  # ELOOP on Linux, EMLINK on some BSDs: ask the file system instead
            raise _symlink_error(path) from None
        raise
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return None  # a directory, FIFO or device is not a token file
        return file.read()


def write_private_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically with mode 0600.

    Raises :class:`AuthoriserError` when ``path`` is a symbolic link (it is left as it is) and ``OSError`` on
    any other failure.
    """
    if os.path.islink(path):
        raise _symlink_error(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=TOKEN_DIR_MODE)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp already creates the file 0600; say so explicitly in case a platform differs.
        os.chmod(tmp_name, TOKEN_FILE_MODE)
        # Checked again just before the rename: a link planted while the file was written is not replaced either.
        # (rename never writes through a link, but it would silently remove one the user may be unaware of.)
        if os.path.islink(path):
            raise _symlink_error(path)
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
