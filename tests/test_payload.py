# SPDX-License-Identifier: MIT
"""aiorequestful.response.payload with real responses from 127.0.0.1: bytes handlers refuse non-bytes,
JSON accepts lists and chains its errors."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

import aiorequestful.response.payload as payload_module
from aiorequestful import _native_py
from aiorequestful.response.exception import PayloadHandlerError
from aiorequestful.response.payload import (
    BytesPayloadHandler,
    JSONPayloadHandler,
    PayloadHandler,
    StringPayloadHandler,
)

BINARY = bytes(range(256))
DOCUMENT = {"id": 42, "name": "Zoë", "tags": ["a", "b"], "price": 1.5, "nested": {"ok": True, "none": None}}
# A page of a few hundred records (~60 KB) with what a fast decoder could get wrong: ints wider than 64 bits, NaN,
# short decimals, long non-ASCII text and keys of every length.
LARGE_DOCUMENT = {
    "items": [
        {
            "id": 10**19 + i,
            "k" * (i % 20): i * 0.01,
            "name": f"Zoë 東京 {i} " * (i % 7),
            "score": float("nan") if i % 50 == 0 else i / 3,
        }
        for i in range(600)
    ],
    "total": 2**64,
}


def _raw(body: bytes, content_type: str | None) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(_: web.Request) -> web.Response:
        response = web.Response(body=body)
        if content_type is None:
            response.headers.popall("Content-Type", None)
        else:
            response.headers["Content-Type"] = content_type
        return response

    return handler


ROUTES: dict[str, tuple[bytes, str | None]] = {
    "/json": (json.dumps(DOCUMENT).encode(), "application/json; charset=utf-8"),
    "/json-as-text": (json.dumps(DOCUMENT).encode(), "text/plain"),
    "/json-no-type": (json.dumps([1, 2, 3]).encode(), None),
    "/json-list": (b'[{"a": 1}, {"b": 2}]', "application/json"),
    "/json-scalar": (b"  12.5 \n", "application/json"),
    "/empty": (b"", "application/json"),
    "/whitespace": (b" \r\n\t ", "application/json"),
    "/invalid-json": (b'{"a": 1,,}', "application/json"),
    "/html": (b"<html><body>Bad gateway</body></html>", "text/html"),
    "/latin1-json": ('{"name": "Zoë", "city": "Düsseldorf"}'.encode("latin-1"), "application/json; charset=ISO-8859-1"),
    "/utf16-json": ('{"name": "Zoë"}'.encode("utf-16"), "application/json; charset=utf-16"),
    "/utf16-json-no-charset": ('{"name": "Zoë"}'.encode("utf-16-le"), "application/json"),
    "/unknown-charset": ('{"name": "Zoë"}'.encode(), "application/json; charset=x-not-a-charset"),
    "/wrong-charset": ('{"name": "Zoë"}'.encode("latin-1"), "application/json; charset=ascii"),
    "/invalid-utf8-json": (b'{"name": "\xff\xfe"}', "application/json"),
    "/text": ("plain text \u2013 ünïcode".encode(), "text/plain; charset=utf-8"),
    "/latin1-text": ("Zoë".encode("latin-1"), "text/plain; charset=latin-1"),
    "/invalid-utf8-text": (b"abc\xff\xfe", "text/plain; charset=utf-8"),
    "/binary": (BINARY, "application/octet-stream"),
    "/deep": (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    "/large-json": (json.dumps(LARGE_DOCUMENT, ensure_ascii=False).encode(), "application/json"),
}


@pytest.fixture
async def base_url(serve: Callable[..., Awaitable[URL]]) -> URL:
    app = web.Application()
    for path, (body, content_type) in ROUTES.items():
        app.router.add_get(path, _raw(body, content_type))
    return await serve(app)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture(params=["default", "rust", "py"])
def json_kernels(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decode JSON with the default backend, then with each kernel explicitly (skipped when not built)."""
    if request.param == "default":
        return
    if request.param == "py":
        monkeypatch.setattr(payload_module, "kernels", _native_py)
        return
    try:
        from aiorequestful import _native
    except ImportError:
        pytest.skip("aiorequestful._native is not built")
    if getattr(_native, "KERNEL_API", None) != _native_py.KERNEL_API:
        pytest.skip("aiorequestful._native is stale")
    monkeypatch.setattr(payload_module, "kernels", _native)


async def fetch(session: aiohttp.ClientSession, base_url: URL, path: str, handler: PayloadHandler[Any]) -> Any:
    async with session.get(base_url.with_path(path)) as response:
        return await handler(response)


# --------------------------------------------------------------------------------------------------
# the abstract handler
# --------------------------------------------------------------------------------------------------
def test_payload_handler_is_abstract() -> None:
    with pytest.raises(TypeError):
        PayloadHandler()  # type: ignore[abstract]


async def test_custom_handler_and_call_passes_response_by_keyword() -> None:
    class Upper(PayloadHandler[str]):
        async def serialize(self, payload: Any) -> str:
            return str(payload)

        async def deserialize(self, response: Any) -> str:
            return str(response).upper()

    handler = Upper()
    awaitable = handler("abc")
    assert hasattr(awaitable, "__await__")
    assert await awaitable == "ABC"


@pytest.mark.parametrize("cls", [StringPayloadHandler, BytesPayloadHandler, JSONPayloadHandler])
def test_handlers_have_no_instance_dict(cls: type[PayloadHandler[Any]]) -> None:
    assert not hasattr(cls(), "__dict__")


# --------------------------------------------------------------------------------------------------
# StringPayloadHandler
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("text", "text"),
        ("Zoë".encode(), "Zoë"),
        (bytearray(b"abc"), "abc"),
        (None, "None"),
        (3, "3"),
        ({"a": 1}, "{'a': 1}"),
    ],
)
async def test_string_serialize(payload: Any, expected: str) -> None:
    assert await StringPayloadHandler().serialize(payload) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("text", "text"), ("Zoë".encode(), "Zoë"), (bytearray(b"abc"), "abc"), (3, "3"), ({"a": 1}, "{'a': 1}")],
)
async def test_string_deserialize_values(value: Any, expected: str) -> None:
    assert await StringPayloadHandler().deserialize(value) == expected


async def test_string_deserialize_none() -> None:
    with pytest.raises(PayloadHandlerError, match=r"^Unrecognised input type: None$"):
        await StringPayloadHandler().deserialize(None)


async def test_string_deserialize_invalid_utf8_bytes() -> None:
    with pytest.raises(PayloadHandlerError, match="not valid UTF-8") as info:
        await StringPayloadHandler().deserialize(b"abc\xff")
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


async def test_string_from_responses(session: aiohttp.ClientSession, base_url: URL) -> None:
    handler = StringPayloadHandler()
    assert await fetch(session, base_url, "/text", handler) == "plain text \u2013 ünïcode"
    assert await fetch(session, base_url, "/latin1-text", handler) == "Zoë"  # the declared charset is honoured
    assert await fetch(session, base_url, "/json", handler) == json.dumps(DOCUMENT)
    assert await fetch(session, base_url, "/empty", handler) == ""


async def test_string_from_undecodable_response(session: aiohttp.ClientSession, base_url: URL) -> None:
    with pytest.raises(PayloadHandlerError, match="could not be decoded") as info:
        await fetch(session, base_url, "/invalid-utf8-text", StringPayloadHandler())
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


# --------------------------------------------------------------------------------------------------
# BytesPayloadHandler
# --------------------------------------------------------------------------------------------------
def test_bytes_encoding_attribute() -> None:
    assert BytesPayloadHandler().encoding == "utf-8"
    assert BytesPayloadHandler("latin-1").encoding == "latin-1"
    assert BytesPayloadHandler(encoding="ascii").encoding == "ascii"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("already text", "already text"),
        ("Zoë".encode(), "Zoë"),
        (bytearray(b"abc"), "abc"),
        (memoryview(b"abc"), "abc"),
    ],
)
async def test_bytes_serialize(payload: Any, expected: str) -> None:
    assert await BytesPayloadHandler().serialize(payload) == expected


async def test_bytes_serialize_uses_the_encoding() -> None:
    assert await BytesPayloadHandler("latin-1").serialize("Zoë".encode("latin-1")) == "Zoë"


@pytest.mark.parametrize("payload", [3, 0, {"a": 1}, None, 1.5, ["a"]])
async def test_bytes_serialize_rejects_non_bytes(payload: Any) -> None:
    # The reference turned 3 into "\x00\x00\x00" and raised TypeError for a dict.
    with pytest.raises(PayloadHandlerError, match=f"^{re.escape(f'Unrecognised input type: {payload}')}$"):
        await BytesPayloadHandler().serialize(payload)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Zoë", "Zoë".encode()),
        (b"abc", b"abc"),
        (bytearray(b"abc"), b"abc"),
        (memoryview(b"abc"), b"abc"),
        (BINARY, BINARY),
    ],
)
async def test_bytes_deserialize_values(value: Any, expected: bytes) -> None:
    result = await BytesPayloadHandler().deserialize(value)
    assert result == expected and type(result) is bytes


async def test_bytes_deserialize_uses_the_encoding() -> None:
    assert await BytesPayloadHandler("latin-1").deserialize("Zoë") == "Zoë".encode("latin-1")


async def test_bytes_deserialize_unencodable_text() -> None:
    with pytest.raises(PayloadHandlerError, match="cannot be encoded as ascii") as info:
        await BytesPayloadHandler("ascii").deserialize("Zoë")
    assert isinstance(info.value.__cause__, UnicodeEncodeError)


@pytest.mark.parametrize("value", [3, 0, {"a": 1}, None, 2.5])
async def test_bytes_deserialize_rejects_non_bytes(value: Any) -> None:
    # The reference returned b"\x00\x00\x00" for 3 and raised TypeError for a dict.
    with pytest.raises(PayloadHandlerError, match=f"^{re.escape(f'Unrecognised input type: {value}')}$"):
        await BytesPayloadHandler().deserialize(value)


async def test_bytes_from_responses(session: aiohttp.ClientSession, base_url: URL) -> None:
    handler = BytesPayloadHandler()
    assert await fetch(session, base_url, "/binary", handler) == BINARY
    assert await fetch(session, base_url, "/empty", handler) == b""
    # The stored form of a binary body cannot be strict text; the failure is an exception, not corrupt data.
    with pytest.raises(UnicodeDecodeError):
        await handler.serialize(BINARY)
    assert await BytesPayloadHandler("latin-1").deserialize(await BytesPayloadHandler("latin-1").serialize(BINARY)) == (
        BINARY
    )


# --------------------------------------------------------------------------------------------------
# JSONPayloadHandler.serialize
# --------------------------------------------------------------------------------------------------
def test_json_indent_attribute() -> None:
    assert JSONPayloadHandler().indent is None
    assert JSONPayloadHandler(indent=2).indent == 2


async def test_json_serialize_objects_and_text() -> None:
    handler = JSONPayloadHandler()
    assert await handler.serialize(DOCUMENT) == json.dumps(DOCUMENT)
    assert await handler.serialize([1, None]) == "[1, null]"
    assert await handler.serialize(None) == "null"
    # Text is parsed first, so stored JSON text is normalised rather than quoted again.
    assert await handler.serialize('{"a":1,  "b":[1,2]}') == '{"a": 1, "b": [1, 2]}'
    assert await handler.serialize(b'{"a": 1}') == '{"a": 1}'
    assert await handler.serialize(bytearray(b"[1]")) == "[1]"
    assert await handler.serialize("3") == "3"


async def test_json_serialize_indent() -> None:
    assert await JSONPayloadHandler(indent=2).serialize({"a": [1]}) == json.dumps({"a": [1]}, indent=2)
    assert await JSONPayloadHandler(indent=4).serialize('{"a": 1}') == '{\n    "a": 1\n}'


@pytest.mark.parametrize("payload", ["not json", "", "{", b"\xff\xfe\xfd", bytearray(b"{,}")])
async def test_json_serialize_invalid_text(payload: Any) -> None:
    with pytest.raises(PayloadHandlerError) as info:
        await JSONPayloadHandler().serialize(payload)
    assert str(info.value) == f"Unrecognised input type: {payload}"
    assert isinstance(info.value.__cause__, ValueError)


async def test_json_serialize_non_serialisable_raises_type_error() -> None:
    with pytest.raises(TypeError):
        await JSONPayloadHandler().serialize({"when": object()})


# --------------------------------------------------------------------------------------------------
# JSONPayloadHandler.deserialize
# --------------------------------------------------------------------------------------------------
async def test_json_deserialize_dict_round_trips(json_kernels: None) -> None:
    handler = JSONPayloadHandler()
    value = {1: "a", "b": (1, 2), "c": {"d": None}}
    result = await handler.deserialize(value)
    assert result == {"1": "a", "b": [1, 2], "c": {"d": None}}
    assert result is not value


async def test_json_deserialize_accepts_a_list(json_kernels: None) -> None:
    # The reference rejected a Python list (valid JSON) with PayloadHandlerError.
    result = await JSONPayloadHandler().deserialize([{"a": 1}, (2, 3), None])
    assert result == [{"a": 1}, [2, 3], None]


@pytest.mark.parametrize("value", [{"a": object()}, [object()], {"a": {1, 2}}])
async def test_json_deserialize_non_serialisable_object(value: Any, json_kernels: None) -> None:
    with pytest.raises(PayloadHandlerError, match=r"^Given payload is not a valid JSON object$"):
        await JSONPayloadHandler().deserialize(value)


async def test_json_deserialize_circular_object() -> None:
    value: dict[str, Any] = {}
    value["self"] = value
    with pytest.raises(PayloadHandlerError, match=r"^Given payload is not a valid JSON object$"):
        await JSONPayloadHandler().deserialize(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (json.dumps(DOCUMENT), DOCUMENT),
        (json.dumps(DOCUMENT).encode(), DOCUMENT),
        (bytearray(b"[1, 2]"), [1, 2]),
        ("3", 3),
        ('"s"', "s"),
        ("null", None),
        ("1e400", float("inf")),
    ],
)
async def test_json_deserialize_text(text: Any, expected: Any, json_kernels: None) -> None:
    assert await JSONPayloadHandler().deserialize(text) == expected


@pytest.mark.parametrize("text", ["not json", "", "{", '{"a": 1,}', b"\xff", "[1] [2]"])
async def test_json_deserialize_invalid_text(text: Any, json_kernels: None) -> None:
    # The reference let json.JSONDecodeError escape, so a corrupt cache entry was not read as a miss.
    with pytest.raises(PayloadHandlerError, match=r"^Given payload is not valid JSON: ") as info:
        await JSONPayloadHandler().deserialize(text)
    assert isinstance(info.value.__cause__, ValueError)


async def test_json_decode_error_is_chained(json_kernels: None) -> None:
    with pytest.raises(PayloadHandlerError) as info:
        await JSONPayloadHandler().deserialize('{"a": }')
    assert isinstance(info.value.__cause__, json.JSONDecodeError)
    assert "Expecting value" in str(info.value)


@pytest.mark.parametrize("value", [None, 3, 1.5, True, object])
async def test_json_deserialize_unrecognised(value: Any) -> None:
    with pytest.raises(PayloadHandlerError, match=f"^{re.escape(f'Unrecognised input type: {value}')}$"):
        await JSONPayloadHandler().deserialize(value)


async def test_json_round_trip_through_serialize() -> None:
    handler = JSONPayloadHandler(indent=2)
    assert await handler.deserialize(await handler.serialize(DOCUMENT)) == DOCUMENT


# --------------------------------------------------------------------------------------------------
# JSONPayloadHandler with real responses
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/json", DOCUMENT),
        ("/json-as-text", DOCUMENT),  # no content-type check
        ("/json-no-type", [1, 2, 3]),
        ("/json-list", [{"a": 1}, {"b": 2}]),
        ("/json-scalar", 12.5),
        ("/empty", None),
        ("/whitespace", None),
        ("/latin1-json", {"name": "Zoë", "city": "Düsseldorf"}),
        ("/utf16-json", {"name": "Zoë"}),
        ("/utf16-json-no-charset", {"name": "Zoë"}),
        ("/unknown-charset", {"name": "Zoë"}),
    ],
)
async def test_json_from_responses(
    session: aiohttp.ClientSession, base_url: URL, path: str, expected: Any, json_kernels: None
) -> None:
    assert await fetch(session, base_url, path, JSONPayloadHandler()) == expected


async def test_json_from_a_large_response_is_the_stdlib_result(
    session: aiohttp.ClientSession, base_url: URL, json_kernels: None
) -> None:
    body, _ = ROUTES["/large-json"]
    result = await fetch(session, base_url, "/large-json", JSONPayloadHandler())
    # NaN is not equal to itself, so compare the re-encoded forms; wide ints must stay ints.
    assert json.dumps(result) == json.dumps(json.loads(body))
    assert type(result["total"]) is int and all(type(item["id"]) is int for item in result["items"])


@pytest.mark.parametrize("path", ["/invalid-json", "/html", "/invalid-utf8-json", "/deep"])
async def test_json_from_invalid_responses(
    session: aiohttp.ClientSession, base_url: URL, path: str, json_kernels: None
) -> None:
    with pytest.raises(PayloadHandlerError, match=r"^Response body is not valid JSON: ") as info:
        await fetch(session, base_url, path, JSONPayloadHandler())
    assert info.value.__cause__ is not None


async def test_json_from_response_not_valid_in_its_declared_charset(
    session: aiohttp.ClientSession, base_url: URL
) -> None:
    with pytest.raises(PayloadHandlerError, match=r"^Response body is not valid ascii text: ") as info:
        await fetch(session, base_url, "/wrong-charset", JSONPayloadHandler())
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


async def test_json_body_stays_readable_after_decoding(session: aiohttp.ClientSession, base_url: URL) -> None:
    async with session.get(base_url.with_path("/json")) as response:
        assert await JSONPayloadHandler()(response) == DOCUMENT
        assert await response.read() == json.dumps(DOCUMENT).encode()  # aiohttp keeps the body it read once
        assert await StringPayloadHandler()(response) == json.dumps(DOCUMENT)


def test_json_handler_uses_the_backend_kernels() -> None:
    from aiorequestful._backend import kernels

    assert payload_module.kernels is kernels


async def test_bytes_handler_accepts_sequences_of_byte_values() -> None:
    """As in 1.0.20, anything else -> bytes(r); only ints and mappings are excluded."""
    handler = BytesPayloadHandler()
    assert await handler.deserialize([97, 98]) == b"ab"
    assert await handler.deserialize(range(97, 99)) == b"ab"
    assert await handler.serialize((97,)) == "a"
    for bad in (3, {"a": 1}, [300], ["a"], object()):
        with pytest.raises(PayloadHandlerError, match=r"^Unrecognised input type: "):
            await handler.deserialize(bad)
