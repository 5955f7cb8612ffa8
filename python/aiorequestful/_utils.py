# SPDX-License-Identifier: MIT
"""Private helpers used across the package."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any, Generic, TypeVar

from aiohttp import RequestInfo
from yarl import URL

from .exception import AIORequestfulImportError
from .security import redact_url

T = TypeVar("T")
R = TypeVar("R")

_URL_WIDTHS = (30, 40, 70, 100)


class classproperty(Generic[T, R]):  # noqa: N801 - 1.0.20 names it in lower case
    """A read-only property computed from the class."""

    def __init__(self, func: Callable[[type[T]], R]) -> None:
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, instance: T | None, owner: type[T]) -> R:
        return self.func(owner)


def get_iterator(value: Any) -> Iterator[Any]:
    """Iterate ``value``: None -> nothing; str, RequestInfo or a non-iterable -> the value alone."""
    if value is None:
        return iter(())
    if isinstance(value, Iterator):
        return value
    # RequestInfo is a tuple subclass, and a str iterates over characters: both count as one item.
    if isinstance(value, (str, RequestInfo)):
        return iter((value,))
    try:
        return iter(value)
    except TypeError:
        return iter((value,))


def format_url_log(method: str, url: URL | str, messages: Any) -> str:
    """One aligned log line: ``METHOD : url-without-query | message | ...``.

    The query is dropped, and user info (``http://user:password@host``) is masked: log lines never carry
    credentials.
    """
    url = URL(url).with_query(None) if not isinstance(url, URL) else url.with_query(None)
    if url.raw_user is not None or url.raw_password is not None:
        url_str = redact_url(url)
    else:
        url_str = str(url)
    width = next((w for w in _URL_WIDTHS if w > len(url_str)), _URL_WIDTHS[-1])
    # The separator after the URL is always there, even with no messages.
    return f"{str(method).upper():<7}: {url_str:<{width}} | " + " | ".join(str(m) for m in get_iterator(messages))


def required_modules_installed(modules: list[Any], this: object = None) -> bool:
    """True when no module in ``modules`` is None; otherwise raise when ``this`` is given.

    The message names the missing modules (``modules`` may hold the module objects or ``None``
    placeholders, so the names come from the object's ``_required_module_names`` hint, else "unknown").
    """
    missing = [module for module in modules if module is None]
    if not missing:
        return True
    if this is None:
        return False
    names = _missing_names(modules, this)
    if isinstance(this, str):
        message = f"Cannot run {this}. Required modules: {names}"
    else:
        message = f"Cannot create {type(this).__name__} object. Required modules: {names}"
    raise AIORequestfulImportError(message)


def _missing_names(modules: list[Any], this: object) -> str:
    hinted = getattr(this, "_required_module_names", None)
    if hinted:
        return ", ".join(name for name, module in zip(hinted, modules, strict=False) if module is None)
    return ", ".join("unknown" for module in modules if module is None)


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` that import ``name`` from the submodule ``exports[name]``
    (relative to ``package``) on first use, so that importing the package itself stays cheap."""

    def attribute(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    def names() -> list[str]:
        return sorted([*vars(sys.modules[package]), *exports])

    return attribute, names


async def settle(tasks: Collection[asyncio.Future[Any]]) -> None:
    """Wait until every task in ``tasks`` - a set the tasks leave through a done callback, which more may join
    meanwhile - has finished (whatever their outcome). Only the unfinished are awaited: the done callback that
    unlists a finished task runs on a later turn of the loop, and awaiting tasks that are all done (gather of them,
    on Python 3.12+) may not give the loop that turn."""
    while True:
        running = [task for task in tasks if not task.done()]
        if not running:
            return
        await asyncio.gather(*running, return_exceptions=True)
