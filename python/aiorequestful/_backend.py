# SPDX-License-Identifier: MIT
"""Choose the Rust kernels or their pure-Python twin, once, at import time.

* ``AIOREQUESTFUL_NO_EXTENSIONS=1`` forces the twin.
* ``AIOREQUESTFUL_REQUIRE_EXTENSIONS=1`` turns a missing, broken or stale native module into an
  ``ImportError`` instead of a silent fall back (CI and benchmark runs set it).
* ``AIOREQUESTFUL_TWIN_KERNELS=json_loads,cache_key`` (measurement only: ``make bench`` uses it to price one
  kernel at a time end to end) keeps the native module but takes the named kernels from the twin. The names are
  those of :data:`SWAPPABLE`; an unknown name is an ``ImportError``. It changes nothing when the twin is in use.

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


#: The kernels ``AIOREQUESTFUL_TWIN_KERNELS`` can take from the twin (every module calls them as ``kernels.<name>``
#: at call time, so a swap made here reaches every caller).
SWAPPABLE: frozenset[str] = frozenset({"DispatchTable", "bucket_take", "cache_key", "json_loads", "timer_plan"})


def _twin_names(value: str) -> frozenset[str]:
    names = frozenset(part.strip() for part in value.split(",") if part.strip())
    unknown = sorted(names - SWAPPABLE)
    if unknown:
        raise ImportError(
            f"AIOREQUESTFUL_TWIN_KERNELS names no kernel: {', '.join(unknown)} (one of {', '.join(sorted(SWAPPABLE))})"
        )
    return names


#: The kernels taken from the twin although the native module is in use (empty unless measuring).
TWIN_KERNELS: frozenset[str] = _twin_names(os.environ.get("AIOREQUESTFUL_TWIN_KERNELS", ""))


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
        elif TWIN_KERNELS:
            import types

            # A copy of the native module's namespace with the named kernels replaced; both modules stay as built.
            mixed = types.ModuleType(kernels.__name__, kernels.__doc__)
            mixed.__dict__.update({k: v for k, v in vars(kernels).items() if not k.startswith("__")})
            for _name in TWIN_KERNELS:
                setattr(mixed, _name, getattr(_twin, _name))
            kernels = mixed
            _reason += f"; measurement only: {', '.join(sorted(TWIN_KERNELS))} from the pure twin"

#: True when the Rust kernels are in use (all of them unless ``TWIN_KERNELS`` names some).
NATIVE: bool = kernels.__name__.endswith("._native")

#: The choice made at import, for :func:`aiorequestful.backend_info`.
INFO = BackendInfo("native" if NATIVE else "pure", _reason)

__all__ = ("DISABLED", "INFO", "NATIVE", "REQUIRED", "SWAPPABLE", "TWIN_KERNELS", "BackendInfo", "kernels")
