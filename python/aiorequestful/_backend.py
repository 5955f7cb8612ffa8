# SPDX-License-Identifier: MIT
"""Choose the Rust kernels or their pure-Python twin, once, at import time.

* ``AIOREQUESTFUL_NO_EXTENSIONS=1`` forces the twin.
* ``AIOREQUESTFUL_REQUIRE_EXTENSIONS=1`` turns a missing, broken or stale native module into an
  ``ImportError`` instead of a silent fall back (CI and benchmark runs set it).

Every other module imports ``kernels`` from here; nothing else decides.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NamedTuple

_FALSY = frozenset({"", "0", "false", "no", "off"})


def _env_flag(name: str) -> bool:
    # Unlike yarl/multidict, "0" means "not set": packagers export these flags with explicit values.
    return os.environ.get(name, "").strip().lower() not in _FALSY


DISABLED: bool = _env_flag("AIOREQUESTFUL_NO_EXTENSIONS")
REQUIRED: bool = _env_flag("AIOREQUESTFUL_REQUIRE_EXTENSIONS")

if DISABLED and REQUIRED:
    raise ImportError("AIOREQUESTFUL_NO_EXTENSIONS and AIOREQUESTFUL_REQUIRE_EXTENSIONS are both set")


class BackendInfo(NamedTuple):
    """Which kernels are in use and why: ``name`` is ``"native"`` (the Rust extension) or ``"pure"`` (the
    pure-Python twin); ``reason`` says why in a sentence (built, disabled, missing, out of date)."""

    name: str
    reason: str


if TYPE_CHECKING or DISABLED:
    from . import _native_py as kernels

    _reason = "disabled by AIOREQUESTFUL_NO_EXTENSIONS"
else:
    try:
        from . import _native as kernels  # type: ignore[no-redef]
    except ImportError as exc:
        # Only ImportError: a crash inside the module's init must stay visible.
        if REQUIRED:
            raise
        import importlib.util

        from . import _native_py as kernels

        try:
            present = importlib.util.find_spec(f"{__package__}._native") is not None
        except (ImportError, ValueError):
            present = False
        _reason = (
            f"the Rust extension is installed but could not be imported: {exc}"
            if present
            else "the Rust extension is not installed (a pure-Python build)"
        )
    else:
        from . import _native_py as _twin

        _reason = "the Rust extension is built and up to date"
        if getattr(kernels, "KERNEL_API", None) != _twin.KERNEL_API:
            # A stale .so left behind by an old editable build: its kernels may not match the Python side.
            stale = (
                f"aiorequestful._native is out of date (KERNEL_API {getattr(kernels, 'KERNEL_API', None)}, "
                f"expected {_twin.KERNEL_API}); rebuild it"
            )
            if REQUIRED:
                raise ImportError(stale)
            kernels = _twin
            _reason = stale

#: True when the Rust kernels are in use.
NATIVE: bool = kernels.__name__.endswith("._native")

#: The choice made at import, for :func:`aiorequestful.backend_info`.
INFO = BackendInfo("native" if NATIVE else "pure", _reason)

__all__ = ("DISABLED", "INFO", "NATIVE", "REQUIRED", "BackendInfo", "kernels")
