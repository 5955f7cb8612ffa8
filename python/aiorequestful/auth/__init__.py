# SPDX-License-Identifier: MIT
"""Authorisers that produce the headers a request needs.

Only :class:`Authoriser` is re-exported here; the concrete authorisers live in ``auth.basic`` and ``auth.oauth2``.
"""

from .base import Authoriser

__all__ = ("Authoriser",)
