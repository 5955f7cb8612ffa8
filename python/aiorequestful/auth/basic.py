# SPDX-License-Identifier: MIT
"""HTTP Basic authorisation (RFC 7617)."""

from __future__ import annotations

from base64 import b64encode

from ..types import Headers
from .base import _DEFAULT_SERVICE_NAME, Authoriser
from .exception import AuthoriserError


class BasicAuthoriser(Authoriser):
    """Authorise every request with a fixed ``Authorization: Basic ...`` header.

    :param login: The user id; it must not contain ``:`` (RFC 7617 §2).
    :param password: The password.
    :param encoding: The character encoding of the credentials (``latin1`` as in the reference; servers that
        announce ``charset="UTF-8"`` want ``utf-8``).
    :param service_name: The service's name, used only in messages.
    """

    __slots__ = ("encoding", "login", "password")

    def __init__(
        self, login: str, password: str = "", encoding: str = "latin1", service_name: str = _DEFAULT_SERVICE_NAME
    ) -> None:
        super().__init__(service_name=service_name)
        self.login = login
        self.password = password
        self.encoding = encoding

    def __repr__(self) -> str:
        # The password never appears in a repr (it ends up in logs and tracebacks).
        return f"{type(self).__name__}(login={self.login!r}, service_name={self.service_name!r})"

    async def authorise(self) -> Headers:
        if ":" in self.login:
            raise AuthoriserError("The login of Basic authorisation must not contain ':' (RFC 7617)")
        try:
            credentials = f"{self.login}:{self.password}".encode(self.encoding)
        except LookupError:
            raise AuthoriserError(f"Unknown encoding for Basic authorisation: {self.encoding!r}") from None
        except UnicodeEncodeError:
            # `from None`: the chained UnicodeEncodeError would carry the password in its `object` attribute.
            raise AuthoriserError(
                f"The credentials for {self.service_name} cannot be encoded as {self.encoding!r}; "
                "choose an encoding such as 'utf-8'"
            ) from None
        # base64 output is ASCII whatever the credentials' encoding was.
        token = b64encode(credentials).decode("ascii")
        self.logger.debug("Basic authorisation headers generated for %s", self.service_name)
        return {"Authorization": f"Basic {token}"}


BASIC_CLASSES: frozenset[type[Authoriser]] = frozenset({BasicAuthoriser})

__all__ = ("BASIC_CLASSES", "BasicAuthoriser")
