# SPDX-License-Identifier: MIT
"""RedisTokenStore: one OAuth2 token for a fleet, one renewal at a time, against the local provider.

Within one process, each "worker" is its own RedisConnection, authoriser and store, as separate processes would
be; the 4-process version is in ``test_redis_fleet.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from aiorequestful.auth._redis_store import RedisTokenStore
from aiorequestful.auth.exception import AuthoriserError
from aiorequestful.auth.oauth2 import AuthorisationCodeFlow, ClientCredentialsFlow
from aiorequestful.auth.utils import AuthResponse, AuthTester
from aiorequestful.request import RequestHandler
from aiorequestful.response.payload import JSONPayloadHandler
from aiorequestful.shared import RedisConnection

from .oauth_provider import ConsentBrowser, OAuthProvider, no_real_browser_fixture  # noqa: F401 - fixtures
from .redis_support import (  # noqa: F401 - fixtures
    RedisServer,
    dedicated_redis_fixture,
    redis_connection_fixture,
    redis_namespace_fixture,
    redis_url_fixture,
    sync_client,
)

pytestmark = pytest.mark.usefixtures("no_real_browser")

SECRET = "app-secret-value"


@pytest.fixture
async def provider(serve: Any) -> tuple[OAuthProvider, URL]:
    state = OAuthProvider(token_delay=0.2)  # a token request takes a while: concurrent renewals would overlap
    state.add_client("app", SECRET)
    return state, await serve(state.app())


class Fleet:
    """``size`` workers, each with its own connection, authoriser and store (all on one token name)."""

    def __init__(self, url: str, namespace: str, token_url: URL, size: int = 4, **store_kwargs: Any) -> None:
        self.connections = [
            RedisConnection(url, namespace=namespace, retry_min=0.05, retry_max=0.2) for _ in range(size)
        ]
        self.flows: list[ClientCredentialsFlow] = []
        for connection in self.connections:
            flow = ClientCredentialsFlow.create(token_url, "app", SECRET, service_name="Fleet API")
            flow.token_store = RedisTokenStore(connection, "fleet-api", **store_kwargs)
            self.flows.append(flow)

    async def authorise_all(self, tasks_per_worker: int) -> list[Any]:
        calls = [flow.authorise() for flow in self.flows for _ in range(tasks_per_worker)]
        return await asyncio.gather(*calls, return_exceptions=True)

    async def close(self) -> None:
        for connection in self.connections:
            await connection.aclose()


@pytest.fixture
async def fleet(redis_url: str, redis_namespace: str, provider: tuple[OAuthProvider, URL]) -> Any:
    fleet = Fleet(redis_url, redis_namespace, provider[1] / "token")
    yield fleet
    await fleet.close()


async def test_a_fleet_shares_one_token(fleet: Fleet, provider: tuple[OAuthProvider, URL]) -> None:
    state, _ = provider
    results = await fleet.authorise_all(25)  # 100 tasks over 4 workers
    assert state.token_request_count == 1
    assert len({r["Authorization"] for r in results}) == 1
    assert all(flow.response.token == fleet.flows[0].response.token for flow in fleet.flows)


async def test_100_tasks_that_find_an_expired_token_cause_one_token_request(
    fleet: Fleet, provider: tuple[OAuthProvider, URL]
) -> None:
    state, _ = provider
    for flow in fleet.flows:
        # Whether a token is too close to its expiry is the tester's decision (the default one never looks).
        flow.tester = AuthTester(max_expiry=1)
    state.expires_in = 2.0
    first = await fleet.authorise_all(1)
    assert state.token_request_count == 1
    await asyncio.sleep(1.1)  # every worker's token now has less than max_expiry left (clocks and Redis agree)
    state.expires_in = 3600
    results = await fleet.authorise_all(25)
    assert state.token_request_count == 2
    renewed = {r["Authorization"] for r in results}
    assert len(renewed) == 1 and renewed != {first[0]["Authorization"]}


async def test_a_refused_token_is_renewed_once_for_the_fleet(fleet: Fleet, provider: tuple[OAuthProvider, URL]) -> None:
    state, _ = provider
    old = (await fleet.authorise_all(1))[0]["Authorization"]
    state.revoke_access_tokens()
    # Every worker got a 401 for the old token; each tells its authoriser, then re-authorises.
    for flow in fleet.flows:
        await flow.invalidate(rejected=old)
    results = await fleet.authorise_all(25)
    assert state.token_request_count == 2
    new = {r["Authorization"] for r in results}
    assert len(new) == 1 and old not in new
    # A late 401 for the old token (already replaced) costs nothing.
    await fleet.flows[2].invalidate(rejected=old)
    assert (await fleet.flows[2].authorise())["Authorization"] in new
    assert state.token_request_count == 2


async def test_request_handlers_of_a_fleet_refresh_once_on_401(
    fleet: Fleet, provider: tuple[OAuthProvider, URL]
) -> None:
    state, base_url = provider
    handlers = [RequestHandler.create(authoriser=flow, payload_handler=JSONPayloadHandler()) for flow in fleet.flows]
    for handler in handlers:
        await handler.__aenter__()
    try:
        assert state.token_request_count == 1
        state.revoke_access_tokens()
        results = await asyncio.gather(*(handlers[i % 4].get(base_url / "api" / "items" / str(i)) for i in range(100)))
    finally:
        for handler in handlers:
            await handler.__aexit__(None, None, None)
    assert [r["item"] for r in results] == [str(i) for i in range(100)]
    assert state.token_request_count == 2


async def test_a_failed_renewal_lets_the_next_worker_try(fleet: Fleet, provider: tuple[OAuthProvider, URL]) -> None:
    state, _ = provider
    state.inject(500, '{"error": "server_error", "error_description": "try again"}')
    results = await fleet.authorise_all(5)
    failures = [r for r in results if isinstance(r, BaseException)]
    successes = [r for r in results if not isinstance(r, BaseException)]
    assert state.token_request_count == 2  # the failed one, then one success shared by the rest
    assert len(failures) == 5 and all(isinstance(f, AuthoriserError) for f in failures)  # one worker's callers
    assert len(successes) == 15 and len({s["Authorization"] for s in successes}) == 1


async def test_a_lock_left_by_a_dead_worker_expires(
    redis_url: str, redis_namespace: str, provider: tuple[OAuthProvider, URL]
) -> None:
    state, base_url = provider
    fleet = Fleet(redis_url, redis_namespace, base_url / "token", size=1, lock_timeout=0.6)
    raw = sync_client(redis_url)
    try:
        store = fleet.flows[0].token_store
        assert isinstance(store, RedisTokenStore)
        raw.set(store.lock_key, "a-worker-that-was-killed", px=600)
        start = time.monotonic()
        await fleet.flows[0].authorise()
        assert time.monotonic() - start >= 0.45
        assert state.token_request_count == 1
        assert not raw.exists(store.lock_key)  # released after the renewal
    finally:
        raw.close()
        await fleet.close()


async def test_a_long_renewal_keeps_its_lock(
    redis_url: str, redis_namespace: str, provider: tuple[OAuthProvider, URL]
) -> None:
    state, base_url = provider
    state.token_delay = 1.2  # four times the lock's life: only the keep-alive holds it
    fleet = Fleet(redis_url, redis_namespace, base_url / "token", lock_timeout=0.3)
    try:
        holder = asyncio.ensure_future(fleet.flows[0].authorise())
        while state.token_request_count < 1:  # the holder has the lock and its token request is at the provider
            await asyncio.sleep(0.005)
        others = await asyncio.gather(*(flow.authorise() for flow in fleet.flows[1:]))
        assert (await holder)["Authorization"] == others[0]["Authorization"]
        assert state.token_request_count == 1
    finally:
        await fleet.close()


async def test_workers_clocks_do_not_matter(
    fleet: Fleet, provider: tuple[OAuthProvider, URL], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = provider
    state.expires_in = 600
    await fleet.flows[0].authorise()
    real = time.time
    # Worker 1's clock is 20 minutes fast: by the writer's expires_at its token would look expired.
    monkeypatch.setattr(time, "time", lambda: real() + 1200)
    headers = await fleet.flows[1].authorise()
    monkeypatch.setattr(time, "time", real)
    assert headers == await fleet.flows[0].authorise()
    assert state.token_request_count == 1
    # Its expiry is on its own clock: about 600 s from its "now".
    assert fleet.flows[1].response["expires_at"] == pytest.approx(real() + 1200 + 600, abs=5)


async def test_a_token_is_never_seen_half_written(redis_connection: RedisConnection) -> None:
    writer_flow = ClientCredentialsFlow.create("http://127.0.0.1:1/token", "app", SECRET)
    writer = RedisTokenStore(redis_connection, "atomic")
    reader = RedisTokenStore(RedisConnection(redis_connection.url, namespace=redis_connection.namespace), "atomic")

    async def write() -> None:
        for n in range(300):
            writer_flow.response.replace({"access_token": f"token-{n}", "n": n, "pad": "x" * (n * 50)})
            writer_flow.response["expires_at"] = time.time() + n
            await writer._write(writer_flow)

    async def read() -> int:
        seen = 0
        for _ in range(300):
            snapshot = await reader._read()
            if snapshot.body is None:
                continue
            body = snapshot.body
            assert body["access_token"] == f"token-{body['n']}" and body["pad"] == "x" * (body["n"] * 50)
            assert snapshot.remaining_ms == pytest.approx(body["n"] * 1000, abs=1000)
            seen += 1
        return seen

    try:
        results = await asyncio.gather(write(), read(), read())
        assert results[1] + results[2] > 0
    finally:
        await reader.connection.aclose()


async def test_an_unreadable_shared_token_is_renewed(
    fleet: Fleet, provider: tuple[OAuthProvider, URL], redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    state, _ = provider
    store = fleet.flows[0].token_store
    assert isinstance(store, RedisTokenStore)
    raw = sync_client(redis_url)
    try:
        raw.hset(store.token_key, mapping={"body": b"{truncated", "written": b"0", "remaining": b"-1"})
        caplog.set_level(logging.WARNING)
        await fleet.flows[0].authorise()
        assert state.token_request_count == 1
        assert any("unreadable" in r.getMessage() for r in caplog.records)
        assert json.loads(raw.hget(store.token_key, "body"))["access_token"] == fleet.flows[0].response.token
    finally:
        raw.close()


@pytest.mark.slow
async def test_redis_down_means_local_tokens_shared_when_it_is_back(
    dedicated_redis: RedisServer, provider: tuple[OAuthProvider, URL], caplog: pytest.LogCaptureFixture
) -> None:
    state, base_url = provider
    fleet = Fleet(dedicated_redis.url, "tokens", base_url / "token", size=2)
    caplog.set_level(logging.WARNING, logger="aiorequestful.shared.connection")
    try:
        dedicated_redis.kill()
        results = await fleet.authorise_all(10)
        assert not any(isinstance(r, BaseException) for r in results)
        assert state.token_request_count == 2  # each worker on its own, as without a store
        assert len(caplog.records) == 2  # one warning per worker
        dedicated_redis.start()
        await asyncio.sleep(0.3)  # past the back-off
        store = fleet.flows[1].token_store
        assert isinstance(store, RedisTokenStore)
        raw = sync_client(dedicated_redis.url)
        try:
            deadline = time.monotonic() + 10
            while not raw.exists(store.token_key):
                assert time.monotonic() < deadline
                await fleet.flows[1].authorise()  # still valid: published rather than thrown away
                await asyncio.sleep(0.05)
            assert json.loads(raw.hget(store.token_key, "body"))["access_token"] == fleet.flows[1].response.token
        finally:
            raw.close()
        assert (await fleet.flows[0].authorise()) == (await fleet.flows[1].authorise())
        assert state.token_request_count == 2
    finally:
        await fleet.close()


async def test_tokens_never_reach_the_logs(
    fleet: Fleet, provider: tuple[OAuthProvider, URL], caplog: pytest.LogCaptureFixture
) -> None:
    state, _ = provider
    caplog.set_level(logging.DEBUG)
    state.expires_in = 0.5
    await fleet.authorise_all(3)
    await asyncio.sleep(0.6)
    await fleet.authorise_all(3)
    text = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    for secret in state.secrets_seen:
        assert secret not in text


async def test_token_files_are_kept_private_when_a_shared_token_is_adopted(
    fleet: Fleet, provider: tuple[OAuthProvider, URL], tmp_path: Path
) -> None:
    for index, flow in enumerate(fleet.flows):
        flow.response = AuthResponse(file_path=tmp_path / f"worker-{index}")
    await fleet.authorise_all(2)
    for index, flow in enumerate(fleet.flows):
        path = tmp_path / f"worker-{index}.json"
        assert json.loads(path.read_text())["access_token"] == flow.response.token
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_authorisation_code_flow_shares_rotated_refresh_tokens(
    redis_url: str, redis_namespace: str, serve: Any
) -> None:
    state = OAuthProvider(rotate_refresh_tokens=True)
    state.add_client("app", SECRET)
    base = await serve(state.app())
    connections = [RedisConnection(redis_url, namespace=redis_namespace) for _ in range(2)]
    flows = []
    for connection in connections:
        flow = AuthorisationCodeFlow.create(
            user_request_url=base / "authorize",
            token_request_url=base / "token",
            client_id="app",
            client_secret=SECRET,
            refresh_request_url=base / "token",
            scope=["read"],
            redirect_uri="http://127.0.0.1:0/callback",
        )
        flow.open_browser = ConsentBrowser()
        flow.token_store = RedisTokenStore(connection, "code-flow")
        flows.append(flow)
    try:
        first = await flows[0].authorise()  # the only browser authorisation
        assert await flows[1].authorise() == first  # adopted: no browser, no token request
        assert state.counters["authorize"] == 1 and state.token_request_count == 1

        state.revoke_access_tokens()
        await flows[1].invalidate(rejected=first["Authorization"])
        second = await flows[1].authorise()  # a refresh, which rotates the refresh token
        assert state.grant_count("refresh_token") == 1
        await flows[0].invalidate(rejected=first["Authorization"])
        assert await flows[0].authorise() == second  # adopted the new token and refresh token

        state.revoke_access_tokens()
        await flows[0].invalidate(rejected=second["Authorization"])
        third = await flows[0].authorise()  # refreshes with the *rotated* refresh token it got from Redis
        assert third != second
        assert state.grant_count("refresh_token") == 2 and state.counters["authorize"] == 1
    finally:
        for connection in connections:
            await connection.aclose()


def test_invalid_store_settings(redis_url: str) -> None:
    connection = RedisConnection(redis_url)
    with pytest.raises(ValueError, match="name"):
        RedisTokenStore(connection, "")
    with pytest.raises(ValueError, match="lock_timeout"):
        RedisTokenStore(connection, "x", lock_timeout=0)
    with pytest.raises(TypeError, match="RedisConnection"):
        RedisTokenStore("redis://127.0.0.1", "x")  # type: ignore[arg-type]
    store = RedisTokenStore(connection, "a {b}: c")
    assert store.token_key.count("{") == 1 and store.lock_key.endswith(":lock")
    assert "a {b}" not in repr(store.token_key)
