# SPDX-License-Identifier: MIT
"""AuthRequest, AuthResponse, AuthTester, SocketHandler and token files."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import time
from http import HTTPMethod

import pytest
from aiohttp import ClientResponse, ClientSession, web
from multidict import MultiDict
from yarl import URL

from aiorequestful.auth.exception import AuthoriserError
from aiorequestful.auth.utils import AuthRequest, AuthResponse, AuthTester, SocketHandler
from aiorequestful.types import RequestKwargs


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "query": list(request.query.items()),
            "body": body.decode(),
            "content_type": request.content_type,
            "authorization": request.headers.get("Authorization"),
            "x_extra": request.headers.get("X-Extra"),
        }
    )


@pytest.fixture
async def echo_url(serve) -> URL:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    return await serve(app)


# --------------------------------------------------------------------------------------------------
# AuthRequest
# --------------------------------------------------------------------------------------------------
def test_auth_request_slots_and_normalisation() -> None:
    request = AuthRequest(method="post", url="http://127.0.0.1/token", params={"a": "1"})
    assert AuthRequest.__slots__ == ("_payload_key", *RequestKwargs.__annotations__)
    assert request.method is HTTPMethod.POST
    assert request.url == URL("http://127.0.0.1/token")
    assert request.payload == {"a": "1"}
    assert not hasattr(request, "__dict__")

    with pytest.raises(AttributeError, match="unexpected keyword argument 'bogus'"):
        AuthRequest(method="GET", url="http://x", bogus=1)  # type: ignore[call-arg]
    with pytest.raises(AttributeError, match="requires the keyword arguments"):
        AuthRequest(url="http://x")  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        AuthRequest(method="FETCH", url="http://x")


def test_payload_key_preference() -> None:
    assert AuthRequest(method="GET", url="http://x", data={"d": 1}, json={"j": 1})._payload_key == "data"
    assert AuthRequest(method="GET", url="http://x", json={"j": 1}, params={"p": 1})._payload_key == "json"
    bare = AuthRequest(method="GET", url="http://x")
    assert bare._payload_key == "params"
    assert bare.payload is None
    bare.payload = {"p": "1"}
    assert bare.params == {"p": "1"}


def test_set_payload_type_moves_the_payload() -> None:
    request = AuthRequest(method="POST", url="http://x", params={"client_id": "c"})
    request.set_payload_type("data")
    assert request.data == {"client_id": "c"}
    assert not hasattr(request, "params")
    assert request.payload == {"client_id": "c"}
    request.set_payload_type("json")
    assert request.json == {"client_id": "c"} and not hasattr(request, "data")

    empty = AuthRequest(method="POST", url="http://x")
    empty.set_payload_type("data")
    assert empty.payload is None and empty._payload_key == "data"

    with pytest.raises(ValueError, match="Payload type must be one of"):
        request.set_payload_type("body")  # type: ignore[arg-type]

    merged = AuthRequest(method="POST", url="http://x", params={"a": "1"})
    merged.data = {"b": "2"}
    merged.set_payload_type("data")
    assert merged.data == {"b": "2", "a": "1"}

    clash = AuthRequest(method="POST", url="http://x", params={"a": "1"})
    clash.data = "raw=body"
    with pytest.raises(ValueError, match="not a mapping"):
        clash.set_payload_type("data")
    assert clash.params == {"a": "1"} and clash.data == "raw=body" and clash._payload_key == "params"


def test_enrich_payload_and_headers_restore() -> None:
    request = AuthRequest(method="POST", url="http://x", data={"client_id": "c"}, headers={"accept": "a"})
    with request.enrich_payload({"code": "secret-code"}), request.enrich_headers({"Accept": "b", "X-Extra": "1"}):
        assert request.payload == {"client_id": "c", "code": "secret-code"}
        assert request.headers == {"Accept": "b", "X-Extra": "1"}
    assert request.payload == {"client_id": "c"}
    assert request.headers == {"accept": "a"}

    with request.enrich_payload({}):
        assert request.payload == {"client_id": "c"}

    bare = AuthRequest(method="POST", url="http://x")
    with bare.enrich_payload({"a": "1"}), bare.enrich_headers({"H": "v"}):
        assert bare.params == {"a": "1"} and bare.headers == {"H": "v"}
    assert not hasattr(bare, "params") and not hasattr(bare, "headers")


def test_enrich_restores_on_exceptions() -> None:
    request = AuthRequest(method="POST", url="http://x", data={"client_id": "c"})
    with pytest.raises(RuntimeError), request.enrich_payload({"code": "secret-code"}):
        raise RuntimeError("boom")
    assert request.payload == {"client_id": "c"}
    with pytest.raises(RuntimeError), request.enrich_headers({"Authorization": "Bearer secret"}):
        raise RuntimeError("boom")
    assert not hasattr(request, "headers")


def test_enrich_rejects_non_mapping_payload() -> None:
    request = AuthRequest(method="POST", url="http://x", data="a=b")
    with pytest.raises(TypeError, match="Cannot add fields to a str 'data' payload"), request.enrich_payload({"c": 1}):
        pass
    assert request.data == "a=b"


def test_repr_shows_no_values() -> None:
    request = AuthRequest(method="POST", url="http://x/t?q=hidden", data={"client_secret": "s3cr3t-value"})
    text = repr(request)
    assert "client_secret" in text and "s3cr3t-value" not in text and "hidden" not in text


async def test_request_sanitises_params_only(echo_url: URL) -> None:
    request = AuthRequest(
        method="POST", url=echo_url / "p", params={"flag": True, "none": None, "n": 2, "list": ["a", 1]}
    )
    async with ClientSession() as session, request.request(session) as response:
        seen = await response.json()
    assert seen["method"] == "POST"
    assert dict(seen["query"]) == {"flag": "true", "none": "null", "n": "2", "list": '["a", 1]'}
    assert request.params["flag"] is True  # the stored request is untouched

    body = {"scopes": ["a", "b"], "flag": True}
    json_request = AuthRequest(method="POST", url=echo_url / "j", json=body)
    async with ClientSession() as session, json_request(session) as response:
        seen = await response.json()
    assert json.loads(seen["body"]) == body  # JSON bodies are sent as given

    raw = AuthRequest(method="POST", url=echo_url / "r", data="a=b")
    async with ClientSession() as session, raw.request(session) as response:
        assert (await response.json())["body"] == "a=b"

    form = AuthRequest(method="POST", url=echo_url / "f", data={"grant_type": "x", "flag": False, "n": 1})
    async with ClientSession() as session, form.request(session) as response:
        seen = await response.json()
    assert seen["content_type"] == "application/x-www-form-urlencoded"
    assert seen["body"] == "grant_type=x&flag=false&n=1"
    assert seen["query"] == []

    multi = AuthRequest(method="GET", url=echo_url / "m", params=MultiDict([("s", "a"), ("s", "b")]))
    async with ClientSession() as session, multi.request(session) as response:
        assert (await response.json())["query"] == [["s", "a"], ["s", "b"]]


async def test_request_is_not_a_coroutine(echo_url: URL) -> None:
    request = AuthRequest(method="GET", url=echo_url)
    async with ClientSession() as session:
        manager = request(session)
        assert not hasattr(manager, "__await__")
        async with manager as response:
            assert response.status == 200


# --------------------------------------------------------------------------------------------------
# AuthResponse
# --------------------------------------------------------------------------------------------------
def test_auth_response_mapping_and_token() -> None:
    response = AuthResponse(file_path="tokens/example", token_prefix_default="Bearer")
    assert response.file_path == __import__("pathlib").Path("tokens/example.json")
    assert response.token_key == "access_token"
    assert response.logger is logging.getLogger("aiorequestful.auth.utils")
    assert not response and response.headers == {} and response.sanitised == {}
    with pytest.raises(AuthoriserError, match=r"^Stored response is not available\.$"):
        _ = response.token

    response["refresh_token"] = "rt-abcdefgh"
    with pytest.raises(AuthoriserError, match=r"^Did not find valid token at key: access_token \| ") as info:
        _ = response.token
    assert "rt-abcdefgh" not in str(info.value)
    response.replace({"access_token": "at-1234567890", "token_type": "bearer"})
    assert response.token == "at-1234567890"
    assert dict(response) == {"access_token": "at-1234567890", "token_type": "bearer"}
    assert response.headers == {"Authorization": "Bearer at-1234567890"}
    assert "at-1234567890" not in repr(response)


def test_headers_prefix() -> None:
    response = AuthResponse()
    response.replace({"access_token": "tok-123456"})
    assert response.headers == {"Authorization": "tok-123456"}  # never "None tok-..."
    response.token_prefix_default = "Token"
    assert response.headers == {"Authorization": "Token tok-123456"}
    response["token_type"] = "MAC"
    response.additional_headers = {"X-Client": "1"}
    assert response.headers == {"Authorization": "MAC tok-123456", "X-Client": "1"}


def test_sanitised_masks_tokens() -> None:
    response = AuthResponse()
    response.replace(
        {
            "access_token": "at-1234567890",
            "refresh_token": "rt-0987654321",
            "id_token": "abc",
            "expires_in": 3600,
            "scope": "read",
        }
    )
    assert response.sanitised == {
        "access_token": "at-12...",
        "refresh_token": "rt-09...",
        "id_token": "",
        "expires_in": 3600,
        "scope": "read",
    }
    assert response["access_token"] == "at-1234567890"  # a copy was masked


def test_enrich() -> None:
    response = AuthResponse()
    response.enrich(refresh_token="rt")
    assert not response  # no-op when empty

    response.replace({"access_token": "a", "expires_in": "120"})
    before = time.time()
    response.enrich(refresh_token="rt-old")
    assert before <= response["granted_at"] <= time.time()
    assert response["expires_at"] == pytest.approx(response["granted_at"] + 120)
    assert response["refresh_token"] == "rt-old"

    response.replace({"access_token": "a", "refresh_token": "rt-new"})
    response.enrich(refresh_token="rt-old")
    assert response["refresh_token"] == "rt-new" and "expires_at" not in response


def test_enrich_with_garbage_expiry(caplog: pytest.LogCaptureFixture) -> None:
    response = AuthResponse()
    response.replace({"access_token": "a", "expires_in": "soon"})
    with caplog.at_level(logging.WARNING, "aiorequestful.auth.utils"):
        response.enrich()
    assert "expires_at" not in response
    assert "invalid expires_in" in caplog.text


def test_token_file_round_trip_is_private_and_atomic(tmp_path) -> None:
    path = tmp_path / "tokens" / "example"
    response = AuthResponse(file_path=path)
    response.save_response_to_file()  # empty: no file
    assert not path.with_suffix(".json").exists()

    response.replace({"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 10})
    old_umask = os.umask(0o022)
    try:
        response.save_response_to_file()
    finally:
        os.umask(old_umask)
    saved = path.with_suffix(".json")
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text()) == dict(response)
    assert saved.read_text().startswith("{\n  ")  # indent=2
    assert sorted(p.name for p in saved.parent.iterdir()) == ["example.json"]  # no temp file left

    # an existing world-readable file is replaced by a private one
    saved.chmod(0o644)
    response["access_token"] = "at-2"
    response.save_response_to_file()
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600

    loaded = AuthResponse(file_path=path)
    assert loaded.load_response_from_file() == dict(response)
    assert dict(loaded) == dict(response)
    assert AuthResponse().load_response_from_file() is None
    assert AuthResponse(file_path=tmp_path / "missing").load_response_from_file() is None


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token.json"
    response = AuthResponse(file_path=path)
    response.replace({"access_token": "at-old"})
    response.save_response_to_file()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    response["access_token"] = "at-new"
    with pytest.raises(OSError, match="No space"):
        response.save_response_to_file()
    assert json.loads(path.read_text()) == {"access_token": "at-old"}
    assert [p.name for p in tmp_path.iterdir()] == ["token.json"]


def test_kill_9_while_saving_leaves_a_complete_file(tmp_path) -> None:
    """A writer killed mid-save leaves the previous or the new file, never a partial one."""
    import signal
    import subprocess
    import sys

    path = tmp_path / "token"
    script = (
        "import sys\n"
        "from aiorequestful.auth.utils import AuthResponse\n"
        "r = AuthResponse(file_path=sys.argv[1])\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1\n"
        "    r.replace({'access_token': f'at-{i}', 'padding': 'x' * 2_000_000})\n"
        "    r.save_response_to_file()\n"
        "    if i == 2:\n"
        "        print('ready', flush=True)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"
        time.sleep(0.3)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    loaded = AuthResponse(file_path=path)
    content = loaded.load_response_from_file()
    assert content is not None and content["access_token"].startswith("at-")
    assert len(content["padding"]) == 2_000_000


@pytest.mark.parametrize(
    "content",
    [b'{"access_token": "at-partial', b"", b"\xff\xfe garbage", b"[1, 2]", b'{"token_type": "bearer"}', b"null"],
)
def test_corrupt_token_file_is_reported_not_fatal(tmp_path, caplog: pytest.LogCaptureFixture, content: bytes) -> None:
    path = tmp_path / "token.json"
    path.write_bytes(content)
    response = AuthResponse(file_path=path)
    with caplog.at_level(logging.WARNING, "aiorequestful.auth.utils"):
        assert response.load_response_from_file() is None
    assert not response
    assert "a new token will be requested" in caplog.text
    assert "at-partial" not in caplog.text


# --------------------------------------------------------------------------------------------------
# AuthTester
# --------------------------------------------------------------------------------------------------
def _response(**fields) -> AuthResponse:
    response = AuthResponse(token_prefix_default="Bearer")
    response.replace(fields)
    return response


async def test_tester_basic_rules() -> None:
    tester = AuthTester()
    assert (tester.request, tester.response_test, tester.max_expiry) == (None, None, 0)
    assert await tester() is False
    assert await tester.test(AuthResponse()) is False
    assert await tester(_response(access_token="a")) is True
    assert await tester(_response(access_token="a", error="invalid_grant")) is False
    # max_expiry <= 0: no expiry check at all (as in 1.0.20)
    assert await tester(_response(access_token="a", expires_at=time.time() - 10)) is True


async def test_tester_expiry() -> None:
    tester = AuthTester(max_expiry=300)
    now = time.time()
    assert await tester(_response(access_token="a", expires_at=now + 3600)) is True
    assert await tester(_response(access_token="a", expires_at=now + 200)) is False
    assert await tester(_response(access_token="a", expires_in=3600)) is True
    assert await tester(_response(access_token="a", expires_in=300)) is False
    # expires_at (recorded by enrich) wins over expires_in
    assert await tester(_response(access_token="a", expires_in=3600, expires_at=now + 10)) is False
    assert await tester(_response(access_token="a")) is True
    assert await tester(_response(access_token="a", expires_in="garbage")) is False

    enriched = _response(access_token="a", expires_in=3600)
    enriched.enrich()
    assert await tester(enriched) is True


async def test_tester_request(serve) -> None:
    async def me(request: web.Request) -> web.Response:
        ok = request.headers.get("Authorization") == "Bearer good-token"
        return web.json_response({"ok": ok}, status=200 if ok else 401)

    app = web.Application()
    app.router.add_get("/me", me)
    url = await serve(app)

    async def is_ok(resp: ClientResponse) -> bool:
        return resp.status == 200

    async def undecided(resp: ClientResponse) -> bool | None:
        return None

    request = AuthRequest(method="GET", url=url / "me")
    tester = AuthTester(request=request, response_test=is_ok)
    assert await tester(_response(access_token="good-token")) is True
    assert await tester(_response(access_token="bad-token")) is False
    assert not hasattr(request, "headers")  # restored after the test request
    assert await AuthTester(request=request, response_test=undecided)(_response(access_token="good-token")) is False
    # a response without a token is sent without Authorization rather than crashing
    assert await tester(_response(token_type="bearer")) is False


async def test_tester_request_network_failure_is_an_authoriser_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    request = AuthRequest(method="GET", url=f"http://127.0.0.1:{port}/me")

    async def is_ok(resp: ClientResponse) -> bool:
        return True

    with pytest.raises(AuthoriserError, match="Could not test the token"):
        await AuthTester(request=request, response_test=is_ok)(_response(access_token="good-token"))


# --------------------------------------------------------------------------------------------------
# SocketHandler
# --------------------------------------------------------------------------------------------------
def test_socket_handler() -> None:
    handler = SocketHandler(port=0, timeout=3)
    assert (handler.port, handler.timeout) == (0, 3)
    assert (SocketHandler().port, SocketHandler().timeout) == (8080, 120)
    with handler as sock:
        host, port = sock.getsockname()
        assert host == "127.0.0.1" and port > 0
        assert sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM
        assert sock.gettimeout() == 3
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            pass
    assert sock.fileno() == -1  # closed
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=3):
        pass


def test_socket_handler_port_in_use() -> None:
    with SocketHandler(port=0) as sock:
        port = sock.getsockname()[1]
        with pytest.raises(AuthoriserError, match=f"Cannot listen on 127.0.0.1:{port}"), SocketHandler(port=port):
            pass


# --------------------------------------------------------------------------------------------------
# token files are never read or written through a symbolic link
# --------------------------------------------------------------------------------------------------
def test_symlink_at_the_token_path_is_not_read(tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps({"access_token": "at-planted"}))
    link = tmp_path / "token.json"
    link.symlink_to(elsewhere)
    response = AuthResponse(file_path=link)
    with pytest.raises(AuthoriserError, match=r"^Refusing to use the token file .*token\.json: it is a symbolic link"):
        response.load_response_from_file()
    assert not response


def test_symlink_at_the_token_path_is_not_written_through_or_replaced(tmp_path) -> None:
    target = tmp_path / "target.txt"
    target.write_text("keep me")
    target.chmod(0o644)
    link = tmp_path / "token.json"
    link.symlink_to(target)
    response = AuthResponse(file_path=link)
    response.replace({"access_token": "at-secret"})
    with pytest.raises(AuthoriserError, match=str(link)):
        response.save_response_to_file()
    assert link.is_symlink() and target.read_text() == "keep me"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target.txt", "token.json"]  # no temp file left


def test_dangling_symlink_at_the_token_path_is_refused(tmp_path) -> None:
    link = tmp_path / "token.json"
    link.symlink_to(tmp_path / "does-not-exist.json")
    response = AuthResponse(file_path=link)
    with pytest.raises(AuthoriserError, match="symbolic link"):
        response.load_response_from_file()
    response.replace({"access_token": "at-secret"})
    with pytest.raises(AuthoriserError, match="symbolic link"):
        response.save_response_to_file()
    assert not (tmp_path / "does-not-exist.json").exists()


def test_a_fifo_at_the_token_path_is_not_a_token_file(tmp_path) -> None:
    fifo = tmp_path / "token.json"
    os.mkfifo(fifo)
    assert AuthResponse(file_path=fifo).load_response_from_file() is None  # returns at once, no writer needed


def test_symlinked_directory_above_the_token_file_is_fine(tmp_path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "via").symlink_to(real, target_is_directory=True)
    response = AuthResponse(file_path=tmp_path / "via" / "token")
    response.replace({"access_token": "at-1"})
    response.save_response_to_file()
    assert json.loads((real / "token.json").read_text()) == {"access_token": "at-1"}
    assert AuthResponse(file_path=tmp_path / "via" / "token").load_response_from_file() == {"access_token": "at-1"}
