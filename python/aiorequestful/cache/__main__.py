# SPDX-License-Identifier: MIT
"""``python -m aiorequestful.cache PATH COMMAND``: see :mod:`aiorequestful.cache.cli`."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
