# SPDX-License-Identifier: MIT
"""How flow control names a host: the ``(scheme, host, port)`` of a request URL."""

from __future__ import annotations

from typing import Any

from yarl import URL

#: ``(scheme, host, port)``; every part may be None for a relative URL that no base URL resolves.
HostKey = tuple[str | None, str | None, int | None]


def host_key(url: Any, base_url: URL | None = None) -> HostKey:
    """The host key of ``url``: its lower-cased scheme and host, and its port (the scheme's default when absent).

    A relative URL is resolved against ``base_url`` (the session's ``base_url``) when one is given.
    """
    if not isinstance(url, URL):
        url = URL(str(url))
    if not url.absolute and base_url is not None:
        url = base_url.join(url)
    host = url.host
    scheme = url.scheme
    return (scheme.lower() if scheme else None, host.lower() if host else None, url.port)


def format_host(key: HostKey) -> str:
    """``scheme://host:port`` for messages and logs."""
    scheme, host, port = key
    text = f"{scheme}://" if scheme else ""
    text += host if host else "<relative>"
    if port is not None:
        text += f":{port}"
    return text


__all__ = ["HostKey", "format_host", "host_key"]
