# SPDX-License-Identifier: MIT
"""The exception raised by authorisers."""

from ..exception import AIORequestfulError


class AuthoriserError(AIORequestfulError):
    """Authorisation failed: no valid token could be loaded, requested or tested.

    Messages never carry a token, a client secret or an authorisation code; diagnostics use
    :attr:`aiorequestful.auth.utils.AuthResponse.sanitised`.
    """
