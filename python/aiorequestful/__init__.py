# SPDX-License-Identifier: MIT
"""aiorequestful: an async HTTP request framework over aiohttp, with retries, status handlers, caching and auth.

The constants below are the 1.0.20 top level. ``RequestHandler`` and :func:`backend_info` are also importable
from here; they load on first use, so ``import aiorequestful`` stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._backend import BackendInfo
    from .request import RequestHandler as RequestHandler

__version__ = "1.1.0"

PROGRAM_NAME = "aiorequestful"
PROGRAM_OWNER_NAME = "George Martin Marino"
PROGRAM_OWNER_USER = "geo-martino"
PROGRAM_OWNER_EMAIL = f"gm.engineer+{PROGRAM_NAME}@pm.me"
PROGRAM_URL = f"https://github.com/{PROGRAM_OWNER_USER}/{PROGRAM_NAME}"

MODULE_ROOT: str = Path(__file__).parent.name
PACKAGE_ROOT: Path = Path(__file__).parent.parent


def backend_info() -> BackendInfo:
    """Which kernels this process uses (``"native"`` or ``"pure"``) and why, e.g. missing, disabled or stale."""
    from ._backend import INFO

    return INFO


def __getattr__(name: str) -> Any:
    # A lazy re-export: the request module pulls in aiohttp, which a bare ``import aiorequestful`` should not.
    if name == "RequestHandler":
        from .request import RequestHandler as RequestHandler

        return RequestHandler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "RequestHandler"])
