# SPDX-License-Identifier: MIT
"""An OAuth2 worker run as a separate process by the fleet tests (never collected by pytest).

python redis_worker_auth.py '<json config>'

Config: ``redis_url``, ``namespace``, ``worker``, ``token_url``, ``api_url``, ``tasks``.

Protocol: authorises once (through a RedisTokenStore shared by the fleet) and prints ``ready``; waits for a ``go``
line on stdin; then ``tasks`` concurrent tasks authorise at once (the token has expired by then), one request to
``api_url`` checks the token, and it prints ``result <json>`` with digests of the Authorization values seen
(never the tokens themselves) and the API's status. Exits 0 unless something escaped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from typing import Any

from aiohttp import ClientSession

from aiorequestful.auth._redis_store import RedisTokenStore
from aiorequestful.auth.oauth2 import ClientCredentialsFlow
from aiorequestful.auth.utils import AuthTester
from aiorequestful.shared import RedisConnection
from redis_worker_support import run


def digest(headers: dict[str, str]) -> str:
    return hashlib.sha256(headers["Authorization"].encode()).hexdigest()[:16]


async def main(config: dict[str, Any]) -> int:
    connection = RedisConnection(config["redis_url"], namespace=config["namespace"])
    flow = ClientCredentialsFlow.create(config["token_url"], "app", "app-secret-value", service_name="Fleet API")
    flow.token_store = RedisTokenStore(connection, "fleet-api")
    # The tester alone decides whether a saved token is used (as in 1.0.20); this one refuses a token that has
    # under a second left, so the fleet renews the expired one.
    flow.tester = AuthTester(max_expiry=1)
    async with connection:
        first = digest(await flow.authorise())
        print("ready", flush=True)
        line = await asyncio.to_thread(sys.stdin.readline)
        if line.strip() != "go":
            return 2
        results = await asyncio.gather(*(flow.authorise() for _ in range(config["tasks"])), return_exceptions=True)
        errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
        seen = sorted({digest(r) for r in results if not isinstance(r, BaseException)})
        async with ClientSession() as session, session.get(config["api_url"], headers=await flow.authorise()) as r:
            status = r.status
    print("result " + json.dumps({"worker": config["worker"], "first": first, "seen": seen, "errors": errors,
                                  "status": status}), flush=True)  # fmt: skip
    return 0 if not errors else 1


if __name__ == "__main__":
    run(main)
