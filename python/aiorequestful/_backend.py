# SPDX-License-Identifier: MIT
"""Choose the Rust kernels or their pure-Python twin, once, at import time (style.md S4).

* ``AIOREQUESTFUL_NO_EXTENSIONS=1`` forces the twin.
* ``AIOREQUESTFUL_REQUIRE_EXTENSIONS=1`` turns a missing, broken or stale native module into an
  ``ImportError`` instead of a silent fall back (CI and benchmark runs set it).

Every other module imports ``kernels`` from here; nothing else decides.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

_FALSY = frozenset({"", "0", "false", "no", "off"})


def _env_flag(name: str) -> bool:
    # Unlike yarl/multidict, "0" means "not set": packagers export these flags with explicit values.
    return os.environ.get(name, "").strip().lower() not in _FALSY


DISABLED: bool = _env_flag("AIOREQUESTFUL_NO_EXTENSIONS")
REQUIRED: bool = _env_flag("AIOREQUESTFUL_REQUIRE_EXTENSIONS")

if DISABLED and REQUIRED:
    raise ImportError("AIOREQUESTFUL_NO_EXTENSIONS and AIOREQUESTFUL_REQUIRE_EXTENSIONS are both set")

if TYPE_CHECKING or DISABLED:
    from . import _native_py as kernels
else:
    try:
        from . import _native as kernels  # type: ignore[no-redef]
    except ImportError:
        # Only ImportError: a crash inside the module's init must stay visible.
        if REQUIRED:
            raise
        from . import _native_py as kernels
    else:
        from . import _native_py as _twin

        if getattr(kernels, "KERNEL_API", None) != _twin.KERNEL_API:
            # A stale .so left behind by an old editable build (style.md S4).
            if REQUIRED:
                raise ImportError(
                    f"aiorequestful._native is out of date (KERNEL_API {getattr(kernels, 'KERNEL_API', None)}, "
                    f"expected {_twin.KERNEL_API}); rebuild it"
                )
            kernels = _twin

#: True when the Rust kernels are in use.
NATIVE: bool = kernels.__name__.endswith("._native")

__all__ = ("DISABLED", "NATIVE", "REQUIRED", "kernels")
