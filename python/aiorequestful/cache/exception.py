# SPDX-License-Identifier: MIT
"""Exceptions raised by the cache (api.md §1)."""

from __future__ import annotations

from ..exception import AIORequestfulError

__all__ = ("CacheError",)


class CacheError(AIORequestfulError):
    """An error in the cache: a bad repository definition, an ambiguous request, or storage that failed."""
