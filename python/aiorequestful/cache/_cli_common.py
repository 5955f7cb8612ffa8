# SPDX-License-Identifier: MIT
"""What the cache CLI's SQLite and Redis commands share: the refusal type and the output format."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TextIO


class CacheCliError(Exception):
    """A refusal or failure the tool reports as one line on stderr (exit status 2)."""


def write_json(value: Any, out: TextIO) -> None:
    """``value`` as indented JSON; bytes (a binary key part) as text, undecodable bytes escaped."""
    out.write(json.dumps(value, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def scope_label(digest: Any) -> str:
    """How an entry's credential scope is shown: only the start of the digest (never credentials: none are
    stored), or that the entry was stored without credentials."""
    if not digest:
        return "no credentials"
    return f"credentials {str(digest)[:12]}"


def print_rows(rows: list[dict[str, Any]], columns: Sequence[str], out: TextIO) -> None:
    text = [[cell(row[column]) for column in columns] for row in rows]
    widths = [max([len(column), *(len(line[i]) for line in text)]) for i, column in enumerate(columns)]
    out.write("  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)).rstrip() + "\n")
    for line in text:
        out.write("  ".join(c.ljust(width) for c, width in zip(line, widths, strict=True)).rstrip() + "\n")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "/".join(str(part) for part in value)
    return str(value)


def payload_text(payload: Any) -> str:
    """A payload for a terminal: JSON pretty-printed, other text as it is, bytes by their length only."""
    if isinstance(payload, bytes):
        return f"<{len(payload)} bytes>"
    if payload is None:
        return "<no payload>"
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except (ValueError, TypeError):
        return str(payload)
