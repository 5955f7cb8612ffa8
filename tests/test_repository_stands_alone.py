# SPDX-License-Identifier: MIT
"""Nothing in the repository points at files it does not hold (the project's private contract and design notes,
defect ids from them, or tracker issue numbers): a maintainer or user has only what is here."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Built from parts so that this file does not match itself.
_PATTERNS = [
    re.escape("api" + ".md"),
    re.escape("style" + ".md"),
    re.escape("design" + ".md"),
    re.escape("DEVELOPERS" + ".md"),
    r"\bD" + r"-\d{1,2}\b",
    r"\b[Ii]ssues?" + r" #?\d+\b",
]
_FORBIDDEN = re.compile("|".join(_PATTERNS))
_BINARY_SUFFIXES = {".png", ".so", ".whl", ".gz", ".sqlite", ".ico"}


def _tracked_files() -> list[Path]:
    result = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if result.returncode != 0:  # not a git checkout (the sdist leg's copy): the project's files below the root
        skipped = {".git", ".venv", "venv", "dist", "build", "target", "__pycache__", ".hypothesis"}
        return [
            p
            for p in ROOT.rglob("*")
            if p.is_file() and not skipped.intersection(p.relative_to(ROOT).parts) and "site-packages" not in p.parts
        ]
    return [ROOT / name for name in result.stdout.decode().split("\0") if name]


def test_no_references_to_files_outside_the_repository() -> None:
    offenders = []
    for path in _tracked_files():
        if path.suffix in _BINARY_SUFFIXES or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if _FORBIDDEN.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not offenders, f"{len(offenders)} references:\n" + "\n".join(offenders[:80])


def test_the_help_text_users_read_is_clean() -> None:
    import aiorequestful.request

    doc = aiorequestful.request.RequestHandler.__doc__ or ""
    assert not _FORBIDDEN.search(doc)
