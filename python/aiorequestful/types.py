# SPDX-License-Identifier: MIT
"""Type aliases and the keyword arguments of ``aiohttp.ClientSession.request``.

The original declares its generic aliases with PEP 695 ``type`` statements, which do not parse on
Python 3.11; ``TypeAliasType`` builds the same ``typing.TypeAliasType`` objects on every supported version.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Iterable, Mapping, MutableMapping, MutableSequence, Sequence
from http import HTTPMethod
from ssl import SSLContext
from types import SimpleNamespace
from typing import Any, NotRequired, TypedDict, TypeVar

from aiohttp import BasicAuth, ClientTimeout, Fingerprint
from aiohttp.typedefs import LooseCookies, LooseHeaders, StrOrURL
from yarl import URL

if sys.version_info >= (3, 12):
    from typing import TypeAliasType
else:  # pragma: no cover - exercised on 3.11 only
    from typing_extensions import TypeAliasType

T = TypeVar("T")

UnitIterable = TypeAliasType("UnitIterable", T | Iterable[T], type_params=(T,))
UnitCollection = TypeAliasType("UnitCollection", T | Collection[T], type_params=(T,))
UnitSequence = TypeAliasType("UnitSequence", T | Sequence[T], type_params=(T,))
UnitMutableSequence = TypeAliasType("UnitMutableSequence", T | MutableSequence[T], type_params=(T,))
UnitList = TypeAliasType("UnitList", T | list[T], type_params=(T,))

Number = int | float

ImmutableHeaders = Mapping[str, str]
MutableHeaders = MutableMapping[str, str]
Headers = dict[str, str]

JSON_VALUE = str | int | float | list | dict | bool | None
ImmutableJSON = Mapping[str, JSON_VALUE]
MutableJSON = MutableMapping[str, JSON_VALUE]
JSON = dict[str, JSON_VALUE]

URLInput = str | URL
MethodInput = str | HTTPMethod


class RequestKwargs(TypedDict):
    """The keyword arguments of ``aiohttp.ClientSession.request``; the key order is part of 1.0.20's API."""

    method: MethodInput
    url: URLInput
    params: NotRequired[Mapping[str, str]]
    data: NotRequired[Any]
    json: NotRequired[Any]
    cookies: NotRequired[LooseCookies]
    headers: NotRequired[LooseHeaders]
    skip_auto_headers: NotRequired[Iterable[str]]
    auth: NotRequired[BasicAuth]
    allow_redirects: NotRequired[bool]
    max_redirects: NotRequired[int]
    compress: NotRequired[str]
    chunked: NotRequired[bool]
    expect100: NotRequired[bool]
    raise_for_status: NotRequired[bool | Callable[..., Any]]
    read_until_eof: NotRequired[bool]
    proxy: NotRequired[StrOrURL]
    proxy_auth: NotRequired[BasicAuth]
    timeout: NotRequired[ClientTimeout | Any]
    verify_ssl: NotRequired[bool]
    fingerprint: NotRequired[bytes]
    ssl_context: NotRequired[SSLContext]
    ssl: NotRequired[SSLContext | bool | Fingerprint]
    server_hostname: NotRequired[str]
    proxy_headers: NotRequired[LooseHeaders]
    trace_request_ctx: NotRequired[SimpleNamespace]
    read_bufsize: NotRequired[int]
    auto_decompress: NotRequired[bool]
    max_line_size: NotRequired[int]
    max_field_size: NotRequired[int]


__all__ = (
    "JSON",
    "JSON_VALUE",
    "Headers",
    "ImmutableHeaders",
    "ImmutableJSON",
    "MethodInput",
    "MutableHeaders",
    "MutableJSON",
    "Number",
    "RequestKwargs",
    "URLInput",
    "UnitCollection",
    "UnitIterable",
    "UnitList",
    "UnitMutableSequence",
    "UnitSequence",
)
