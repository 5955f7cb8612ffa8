# SPDX-License-Identifier: MIT
"""Response handling: payload handlers, status handlers and their exceptions.

They live in ``aiorequestful.response.payload``, ``aiorequestful.response.status`` and
``aiorequestful.response.exception``; the names are also importable from here, loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._utils import lazy_exports

if TYPE_CHECKING:
    from .exception import PayloadHandlerError as PayloadHandlerError
    from .exception import ResponseError as ResponseError
    from .exception import ResponseTooLargeError as ResponseTooLargeError
    from .exception import StatusHandlerError as StatusHandlerError
    from .payload import BytesPayloadHandler as BytesPayloadHandler
    from .payload import JSONPayloadHandler as JSONPayloadHandler
    from .payload import PayloadHandler as PayloadHandler
    from .payload import StringPayloadHandler as StringPayloadHandler
    from .status import ClientErrorStatusHandler as ClientErrorStatusHandler
    from .status import RateLimitStatusHandler as RateLimitStatusHandler
    from .status import StatusHandler as StatusHandler
    from .status import UnauthorisedStatusHandler as UnauthorisedStatusHandler

_EXPORTS = {
    "BytesPayloadHandler": ".payload",
    "JSONPayloadHandler": ".payload",
    "PayloadHandler": ".payload",
    "StringPayloadHandler": ".payload",
    "ClientErrorStatusHandler": ".status",
    "RateLimitStatusHandler": ".status",
    "StatusHandler": ".status",
    "UnauthorisedStatusHandler": ".status",
    "PayloadHandlerError": ".exception",
    "ResponseError": ".exception",
    "ResponseTooLargeError": ".exception",
    "StatusHandlerError": ".exception",
}

__all__ = tuple(sorted(_EXPORTS))


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
