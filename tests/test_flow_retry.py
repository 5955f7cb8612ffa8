# SPDX-License-Identifier: MIT
"""Retry policies: transient failures only, idempotent methods only unless asked, jitter.

Without a policy, 1.0.20's behaviour stays in force (every failure of every method is retried); those tests come first.
"""

from __future__ import annotations

import asyncio
import socket
from http import HTTPMethod

import aiohttp
import pytest

from aiorequestful.flow import ALL_METHODS, DEFAULT_RETRY_STATUSES, IDEMPOTENT_METHODS, RetryPolicy
from aiorequestful.request import RequestHandler
from aiorequestful.response.exception import PayloadHandlerError, ResponseError
from aiorequestful.response.payload import JSONPayloadHandler
from aiorequestful.timer import StepCountTimer

from .flow_servers import HITS, answered, start_hosts

# Every test here runs on looptime's fast-forwarded loop clock unless it says otherwise: waits take no real
# time and rates, orders and pauses come out exact, however loaded the machine is.
pytestmark = pytest.mark.looptime


def handler(policy: RetryPolicy | None = None, count: int = 3, **kwargs) -> RequestHandler:
    return RequestHandler.create(
        payload_handler=JSONPayloadHandler(),
        retry_timer=StepCountTimer(initial=0, count=count, step=0.01),
        retry_policy=policy,
        **kwargs,
    )


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------------
# the policy object
# --------------------------------------------------------------------------------------------------
def test_defaults() -> None:
    policy = RetryPolicy()
    assert {408, 425, 429, 500, 502, 503, 504, 599} <= policy.statuses == DEFAULT_RETRY_STATUSES
    assert not {400, 401, 404, 501, 505} & policy.statuses
    assert policy.methods == IDEMPOTENT_METHODS
    assert HTTPMethod.POST not in policy.methods and HTTPMethod.PATCH not in policy.methods
    assert policy.jitter == 0.0 and policy.delay(1.5) == 1.5
    assert policy.retries_status(503, "get") and not policy.retries_status(503, "post")
    assert not policy.retries_status(404, "GET")
    assert policy.retries_exception(aiohttp.ServerDisconnectedError(), "GET")
    assert policy.retries_exception(TimeoutError(), "PUT")
    assert not policy.retries_exception(aiohttp.ServerDisconnectedError(), "POST")
    assert not policy.retries_exception(ValueError(), "GET")
    assert "jitter=0.0" in repr(policy)


def test_validation() -> None:
    assert RetryPolicy(methods="post").methods == {HTTPMethod.POST}
    assert RetryPolicy(statuses=range(500, 505), exceptions=OSError).exceptions == (OSError,)
    with pytest.raises(ValueError):
        RetryPolicy(methods=["FETCH"])
    with pytest.raises(TypeError, match="Statuses must be int"):
        RetryPolicy(statuses=["503"])
    with pytest.raises(ValueError, match="Invalid status code: 42"):
        RetryPolicy(statuses=[42])
    with pytest.raises(TypeError, match="exceptions must be exception types"):
        RetryPolicy(exceptions=[42])
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=-1)
    with pytest.raises(TypeError, match="jitter"):
        RetryPolicy(jitter="1")
    with pytest.raises(TypeError, match="retry_policy must be a RetryPolicy"):
        RequestHandler.create(retry_policy=object())


# --------------------------------------------------------------------------------------------------
# compatibility: no policy
# --------------------------------------------------------------------------------------------------
async def test_without_policy_every_method_and_status_is_retried(serve) -> None:
    """As in 1.0.20: a POST 503 and a GET 404 (no handlers) are retried while the timer allows."""
    ((_app, url),) = await start_hosts(serve, 1)
    async with handler() as h:
        assert (await h.post(url / "item" / "p", params={"script": "503,503"}))["hits"] == 3
    async with handler(response_handlers=[]) as h:
        assert (await h.get(url / "item" / "n", params={"script": "404"}))["hits"] == 2


# --------------------------------------------------------------------------------------------------
# statuses and methods
# --------------------------------------------------------------------------------------------------
async def test_policy_retries_transient_statuses_of_idempotent_methods(serve) -> None:
    ((app, url),) = await start_hosts(serve, 1)
    async with handler(RetryPolicy()) as h:
        assert (await h.get(url / "item" / "a", params={"script": "503,500,429"}))["hits"] == 4
        assert (await h.put(url / "item" / "b", params={"script": "502"}))["hits"] == 2
        # (the message may name the request between the status and the body)
        expected = r"^Status code: 503 \| (POST \S+ \| )?(Content-Type: [^|]+ \| )?status 503$"
        with pytest.raises(ResponseError, match=expected):
            await h.post(url / "item" / "c", params={"script": "503"})
        with pytest.raises(ResponseError, match="Status code: 501"):
            await h.get(url / "item" / "d", params={"script": "501"})
    assert app[HITS]["c"] == 1 and app[HITS]["d"] == 1  # never retried
    assert h.stats.retries == 4


async def test_policy_does_not_retry_unlisted_client_errors(serve) -> None:
    ((app, url),) = await start_hosts(serve, 1)
    async with handler(RetryPolicy(), response_handlers=[]) as h:
        with pytest.raises(ResponseError, match="Status code: 404"):
            await h.get(url / "item" / "n", params={"script": "404"})
        with pytest.raises(ResponseError, match="Status code: 401"):
            await h.get(url / "item" / "u", params={"script": "401"})
    assert app[HITS]["n"] == 1 and app[HITS]["u"] == 1


async def test_non_idempotent_retried_only_when_asked(serve) -> None:
    ((app, url),) = await start_hosts(serve, 1)
    async with handler(RetryPolicy(methods=ALL_METHODS)) as h:
        assert (await h.post(url / "item" / "p", params={"script": "503"}))["hits"] == 2
    async with handler(RetryPolicy(methods=[*IDEMPOTENT_METHODS, "PATCH"])) as h:
        assert (await h.patch(url / "item" / "q", params={"script": "503"}))["hits"] == 2
        with pytest.raises(ResponseError):
            await h.post(url / "item" / "r", params={"script": "503"})
    assert app[HITS]["r"] == 1


async def test_post_429_is_not_waited_out_and_resent(serve) -> None:
    """A method the policy does not retry gives the 429 handler no retry timer: no resend either."""
    ((app, url),) = await start_hosts(serve, 1)
    async with handler(RetryPolicy()) as h:
        with pytest.raises(ResponseError, match="Status code: 429"):
            await h.post(url / "item" / "p", params={"script": "429:0"})
        assert (await h.get(url / "item" / "g", params={"script": "429:0"}))["hits"] == 2
    assert app[HITS]["p"] == 1
    assert h.stats.resends == 1


async def test_custom_statuses(serve) -> None:
    ((_app, url),) = await start_hosts(serve, 1)
    async with handler(RetryPolicy(statuses=[418]), response_handlers=[]) as h:
        assert (await h.get(url / "item" / "t", params={"script": "418"}))["hits"] == 2
        with pytest.raises(ResponseError, match="Status code: 503"):
            await h.get(url / "item" / "u", params={"script": "503"})


# --------------------------------------------------------------------------------------------------
# exceptions
# --------------------------------------------------------------------------------------------------
async def test_resets_and_timeouts_retried_for_get_not_post(serve) -> None:
    ((app, url),) = await start_hosts(serve, 1)
    timeout = aiohttp.ClientTimeout(total=0.3)
    async with handler(RetryPolicy(), count=5, timeout=timeout) as h:
        # aiohttp resends an idempotent request once after a disconnect by itself: reset more often than that.
        assert (await h.get(url / "item" / "r", params={"script": "reset,reset,reset"}))["hits"] == 4
        assert (await h.get(url / "item" / "s", params={"script": "stall:2"}))["hits"] == 2
        with pytest.raises(aiohttp.ClientError):
            await h.post(url / "item" / "p", params={"script": "reset"})
        with pytest.raises(asyncio.TimeoutError):
            await h.post(url / "item" / "q", params={"script": "stall:2"})
    assert app[HITS]["p"] == 1 and app[HITS]["q"] == 1
    assert answered(app)["s"] == 1  # the stalled answer reached nobody and is not counted


async def test_connection_refused_is_retried_for_any_method() -> None:
    """Nothing was sent when the connection could not be opened, so even a POST is tried again."""
    url = f"http://127.0.0.1:{closed_port()}/item/x"
    async with handler(RetryPolicy(), count=2) as h:
        with pytest.raises(aiohttp.ClientConnectorError):
            await h.post(url)
    assert h.stats.errors == 3 and h.stats.retries == 2
    h.stats.check()


async def test_malformed_response_not_retried_by_policy_but_by_default(serve) -> None:
    ((app, url),) = await start_hosts(serve, 1)
    async with handler(RetryPolicy()) as h:
        with pytest.raises(aiohttp.ClientResponseError):
            await h.get(url / "item" / "a", params={"script": "badheader"})
    assert app[HITS]["a"] == 1
    async with handler() as h:  # as in 1.0.20: any aiohttp.ClientError is retried
        assert (await h.get(url / "item" / "b", params={"script": "badheader"}))["hits"] == 2


async def test_custom_exceptions_are_caught_and_retried(serve) -> None:
    """A policy may retry more than transport errors, e.g. a body that is not (yet) valid JSON."""
    ((app, url),) = await start_hosts(serve, 1)
    async with handler(RetryPolicy(exceptions=(PayloadHandlerError, aiohttp.ClientConnectionError))) as h:
        assert (await h.get(url / "item" / "j", params={"script": "badjson,badjson"}))["hits"] == 3
        with pytest.raises(aiohttp.ClientConnectorError):
            await h.get(f"http://127.0.0.1:{closed_port()}/x")
    async with handler(RetryPolicy()) as h:
        with pytest.raises(PayloadHandlerError):
            await h.get(url / "item" / "k", params={"script": "badjson"})
    assert app[HITS]["k"] == 1


# --------------------------------------------------------------------------------------------------
# jitter
# --------------------------------------------------------------------------------------------------
async def test_jitter_spreads_retries(serve) -> None:
    ((_app, url),) = await start_hosts(serve, 1)
    delays: list[float] = []
    async with RequestHandler.create(
        payload_handler=JSONPayloadHandler(),
        retry_timer=StepCountTimer(initial=0.05, count=2, step=0),
        retry_policy=RetryPolicy(jitter=0.2),
    ) as h:
        h.hooks.on_retry.append(lambda method, u, delay, cause: delays.append(delay))
        await asyncio.gather(*(h.get(url / "item" / f"j{i}", params={"script": "503"}) for i in range(20)))
    assert len(delays) == 20
    assert all(0.05 <= d <= 0.25 for d in delays)
    assert len(set(delays)) > 10  # spread, not one instant
    assert h.stats.wait_seconds_by_reason["retry"] == pytest.approx(sum(delays))
