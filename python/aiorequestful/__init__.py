# SPDX-License-Identifier: MIT
"""aiorequestful: an async HTTP request framework over aiohttp, with retries, status handlers, caching and auth.

api.md §1: these constants are the package's public top level; there is deliberately no ``__version__``.
"""

from pathlib import Path

PROGRAM_NAME = "aiorequestful"
PROGRAM_OWNER_NAME = "George Martin Marino"
PROGRAM_OWNER_USER = "geo-martino"
PROGRAM_OWNER_EMAIL = f"gm.engineer+{PROGRAM_NAME}@pm.me"
PROGRAM_URL = f"https://github.com/{PROGRAM_OWNER_USER}/{PROGRAM_NAME}"

MODULE_ROOT: str = Path(__file__).parent.name
PACKAGE_ROOT: Path = Path(__file__).parent.parent
