# SPDX-License-Identifier: MIT
"""The abstract :class:`Authoriser`."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Generator
from typing import Any

from ..types import Headers

_DEFAULT_SERVICE_NAME = "unknown_service"


class Authoriser(ABC):
    """Produces the headers that authorise requests to one service.

    ``await auth``, ``await auth()`` and ``await auth.authorise()`` are equivalent. Every authoriser, the OAuth2
    flows included, logs through the ``aiorequestful.auth.base`` logger (as 1.0.20 does).

    :param service_name: The service's name, used only in messages.
    """

    __slots__ = ("logger", "service_name")

    def __init__(self, service_name: str = _DEFAULT_SERVICE_NAME) -> None:
        self.logger: logging.Logger = logging.getLogger(__name__)
        self.service_name = service_name

    @abstractmethod
    async def authorise(self) -> Headers:
        """Return the headers to add to requests; raise :class:`AuthoriserError` when that is impossible."""
        raise NotImplementedError

    async def invalidate(self, rejected: str | None = None) -> None:
        """Tell the authoriser that the server refused its credentials (a 401).

        ``rejected`` is the ``Authorization`` value the refused request carried (``None`` when unknown).
        Static credentials cannot be renewed, so the base implementation does nothing; OAuth2 authorisers mark
        their token for renewal so that the next :meth:`authorise` refreshes it.
        """
        return None

    def __call__(self) -> Awaitable[Headers]:
        return self.authorise()

    def __await__(self) -> Generator[Any, None, Headers]:
        return self.authorise().__await__()
