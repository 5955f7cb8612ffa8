# SPDX-License-Identifier: MIT
"""Exceptions raised by the cache."""

from __future__ import annotations

from ..exception import AIORequestfulError

__all__ = ("CacheBusyError", "CacheError", "RepositoryNameError")


class CacheError(AIORequestfulError):
    """An error in the cache: a bad repository definition, an ambiguous request, or storage that failed."""


class RepositoryNameError(CacheError, ValueError):
    """A repository name that cannot be used: it clashes with another repository's name (they differ only in
    case, and would share one store) or with a name the backend reserves."""


class CacheBusyError(CacheError):
    """The cache's storage stayed locked by another process for longer than the operation may wait."""
