# SPDX-License-Identifier: MIT
"""The package's base exceptions."""


class AIORequestfulError(Exception):
    """Base exception for every error raised by aiorequestful."""


class InputError(AIORequestfulError, ValueError):
    """An input value is not valid."""


class AIORequestfulImportError(AIORequestfulError, ImportError):
    """A module needed for the requested operation is not installed."""


class HTTPError(AIORequestfulError):
    """Base exception for HTTP errors."""


class RequestError(HTTPError):
    """A request could not be sent or failed."""
