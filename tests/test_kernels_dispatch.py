# SPDX-License-Identifier: MIT
"""``DispatchTable``: first listed handler wins, assigning replaces rather than merges, errors (both backends)."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterable, Iterator
from http import HTTPStatus
from types import ModuleType
from typing import Any

import pytest


def raises_exactly(exc_type: type[BaseException], message: str, fn: Any, *args: Any) -> None:
    with pytest.raises(exc_type) as info:
        fn(*args)
    assert info.type is exc_type, f"{info.type.__name__} is not {exc_type.__name__}"
    assert str(info.value) == message


def test_first_listed_handler_wins(kernels: ModuleType) -> None:
    # The default handler order (Unauthorised, RateLimit, ClientError) and the reversed one.
    client_errors = [400, 401, 403, 404, 429]
    table = kernels.DispatchTable([[401], [429], client_errors])
    assert [table.lookup(code) for code in (401, 429, 400, 404, 200)] == [0, 1, 2, 2, None]
    table = kernels.DispatchTable([client_errors, [401], [429]])
    assert table.lookup(401) == 0
    assert table.lookup(429) == 0


def test_mapping_len_and_repr(kernels: ModuleType) -> None:
    table = kernels.DispatchTable([[429, 401], [], [500, 401, 404]])
    mapping = table.mapping()
    assert mapping == {401: 0, 404: 2, 429: 0, 500: 2}
    assert list(mapping) == [401, 404, 429, 500]  # ascending code order
    assert len(table) == 4
    assert repr(table) == "DispatchTable({401: 0, 404: 2, 429: 0, 500: 2})"
    # mapping() is a new dict each time: changing it does not change the table.
    mapping[200] = 9
    assert table.lookup(200) is None
    assert table.mapping() is not table.mapping()


def test_empty_table(kernels: ModuleType) -> None:
    table = kernels.DispatchTable([])
    assert len(table) == 0
    assert table.mapping() == {}
    assert repr(table) == "DispatchTable({})"
    assert table.lookup(200) is None


def test_any_iterables(kernels: ModuleType) -> None:
    def codes() -> Iterator[Iterable[int]]:
        yield range(500, 505)
        yield iter([200, 201])

    table = kernels.DispatchTable(codes())
    assert table.mapping() == {200: 1, 201: 1, 500: 0, 501: 0, 502: 0, 503: 0, 504: 0}
    table = kernels.DispatchTable(({401}, (429,), frozenset({418})))
    assert table.mapping() == {401: 0, 418: 2, 429: 1}


def test_http_status_codes_are_stored_as_plain_ints(kernels: ModuleType) -> None:
    table = kernels.DispatchTable([[HTTPStatus.UNAUTHORIZED, HTTPStatus.TOO_MANY_REQUESTS]])
    assert all(type(code) is int for code in table.mapping())
    assert repr(table) == "DispatchTable({401: 0, 429: 0})"
    assert table.lookup(HTTPStatus.UNAUTHORIZED) == 0
    assert table.lookup(401) == 0


def test_bounds(kernels: ModuleType) -> None:
    table = kernels.DispatchTable([[100, 999]])
    assert table.lookup(100) == 0
    assert table.lookup(999) == 0
    for status in (99, 1000, 0, -1, 2**63, -(2**63) - 1, 10**100, 65536 + 100):
        assert table.lookup(status) is None


@pytest.mark.parametrize("code", [99, 1000, 0, -404, 2**63, 10**40])
def test_invalid_codes(kernels: ModuleType, code: int) -> None:
    raises_exactly(ValueError, f"Invalid status code: {code}", kernels.DispatchTable, [[200], [404, code]])


def test_invalid_code_too_long_to_print(kernels: ModuleType) -> None:
    # The message formats the int, and Python refuses ints over 4300 digits: both backends raise that ValueError.
    with pytest.raises(ValueError, match="Exceeds the limit"):
        kernels.DispatchTable([[10**5000]])


@pytest.mark.parametrize("code", ["200", 200.0, True, False, None, b"200"])
def test_non_int_codes(kernels: ModuleType, code: Any) -> None:
    raises_exactly(TypeError, f"Status codes must be int, not {type(code).__name__}", kernels.DispatchTable, [[code]])


@pytest.mark.parametrize("status", ["200", 200.0, True, None, [200]])
def test_lookup_needs_an_int(kernels: ModuleType, status: Any) -> None:
    table = kernels.DispatchTable([[200]])
    raises_exactly(TypeError, f"Status codes must be int, not {type(status).__name__}", table.lookup, status)


def test_not_iterable(kernels: ModuleType) -> None:
    raises_exactly(TypeError, "'int' object is not iterable", kernels.DispatchTable, 5)
    raises_exactly(TypeError, "'int' object is not iterable", kernels.DispatchTable, [[200], 404])


def test_errors_from_the_iterable_propagate(kernels: ModuleType) -> None:
    def broken() -> Iterator[list[int]]:
        yield [200]
        raise LookupError("boom")

    raises_exactly(LookupError, "boom", kernels.DispatchTable, broken())


def test_first_bad_code_wins(kernels: ModuleType) -> None:
    raises_exactly(ValueError, "Invalid status code: 5", kernels.DispatchTable, [[5, "x"]])
    raises_exactly(TypeError, "Status codes must be int, not str", kernels.DispatchTable, [["x", 5]])


def test_signature(kernels: ModuleType) -> None:
    with pytest.raises(TypeError):
        kernels.DispatchTable(handler_codes=[[200]])
    with pytest.raises(TypeError):
        kernels.DispatchTable()
    table = kernels.DispatchTable([[200]])
    with pytest.raises(TypeError):
        table.lookup(status=200)


@pytest.mark.parametrize("clone", [copy.copy, copy.deepcopy, lambda t: pickle.loads(pickle.dumps(t))])
def test_copy_and_pickle(kernels: ModuleType, clone: Any) -> None:
    table = kernels.DispatchTable([[429, 401], [], [500, 401, 404], [], [418]])
    other = clone(table)
    assert type(other) is type(table)
    assert other.mapping() == table.mapping()
    assert repr(other) == repr(table)


def test_reduce_rebuilds_from_groups(kernels: ModuleType) -> None:
    table = kernels.DispatchTable([[429, 401], [], [500, 401, 404], [], [418]])
    cls, (groups,) = table.__reduce__()
    assert cls is kernels.DispatchTable
    assert groups == [[401, 429], [], [404, 500], [], [418]]
    assert kernels.DispatchTable([]).__reduce__()[1] == ([],)


def test_not_subclassable(kernels: ModuleType) -> None:
    with pytest.raises(TypeError, match="is not an acceptable base type"):
        type("Sub", (kernels.DispatchTable,), {})
