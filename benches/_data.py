# SPDX-License-Identifier: MIT
"""Deterministic, realistic inputs shared by the benches and the end-to-end scripts.

Nothing here is random at run time: every document and argument tuple comes from a fixed seed, so two runs (and
the native and pure columns of one run) see byte-identical inputs.
"""

from __future__ import annotations

import json
import random
from functools import cache
from typing import Any

# --------------------------------------------------------------------------------------------------
# JSON documents shaped like real API responses
# --------------------------------------------------------------------------------------------------
_WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec "
    "romeo sierra tango uniform victor whiskey xray yankee zulu straße café naïve 東京 Ωmega"
).split()

#: Target sizes in bytes of the three decode documents (~1 KB, ~50 KB, ~2 MB).
JSON_SIZES: dict[str, int] = {"1KB": 1_000, "50KB": 50_000, "2MB": 2_000_000}


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def api_item(rng: random.Random, item_id: int) -> dict[str, Any]:
    """One record as a catalogue/music/social API returns it: ids, text, numbers, nesting, nulls, URLs, dates."""
    return {
        "id": item_id,
        "uri": f"api:item:{item_id:08x}",
        "href": f"https://api.example.test/v2/items/{item_id}",
        "name": _sentence(rng, rng.randint(2, 5)).title(),
        "description": _sentence(rng, rng.randint(5, 14)),
        "popularity": rng.randint(0, 100),
        "price": round(rng.uniform(0.5, 999.0), 2),
        "rating": rng.random() * 5,
        "explicit": rng.random() < 0.2,
        "available": rng.random() < 0.9,
        "released_at": f"20{rng.randint(10, 25):02d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
        "tags": [rng.choice(_WORDS) for _ in range(rng.randint(0, 6))],
        "owner": {
            "id": f"user{rng.randint(1, 10**6)}",
            "display_name": _sentence(rng, 2).title(),
            "followers": {"href": None, "total": rng.randint(0, 10**7)},
        },
        "images": [
            {"url": f"https://img.example.test/{rng.getrandbits(64):016x}", "height": h, "width": h}
            for h in rng.sample((64, 300, 640), k=rng.randint(0, 3))
        ],
        "external_ids": {"isrc": f"XX{rng.getrandbits(40):010X}"} if rng.random() < 0.5 else None,
    }


def _page(rng: random.Random, items: list[dict[str, Any]], offset: int) -> dict[str, Any]:
    return {
        "href": f"https://api.example.test/v2/items?offset={offset}&limit={len(items)}",
        "limit": len(items),
        "offset": offset,
        "total": 10_000,
        "next": f"https://api.example.test/v2/items?offset={offset + len(items)}&limit={len(items)}",
        "previous": None,
        "items": items,
    }


@cache
def json_document(label: str) -> bytes:
    """A UTF-8 API-like JSON document of about ``JSON_SIZES[label]`` bytes (a single item or a page of items)."""
    target = JSON_SIZES[label]
    rng = random.Random(f"aiorequestful-bench-{label}")
    if target <= 2_000:
        return _padded_item(rng, 4242, target)
    items: list[dict[str, Any]] = []
    size = 200
    while size < target:
        item = api_item(rng, len(items) + 1)
        size += len(json.dumps(item, ensure_ascii=False).encode()) + 2
        items.append(item)
    return json.dumps(_page(rng, items, 0), ensure_ascii=False).encode()


def _padded_item(rng: random.Random, item_id: int, target: int) -> bytes:
    # One record whose description grows a word at a time until the document is just under ``target`` bytes.
    doc = api_item(rng, item_id)
    body = json.dumps(doc, ensure_ascii=False).encode()
    while len(body) < target - 12:
        doc["description"] += " " + rng.choice(_WORDS)
        body = json.dumps(doc, ensure_ascii=False).encode()
    return body


#: Size of the fixed ``/json`` body (the instruction-count bench): one API record of about 2 KB.
JSON_BODY_SIZE = 2_100


@cache
def json_body() -> bytes:
    """The body the loopback server sends for ``/json``: the same ~2 KB API record on every request."""
    return _padded_item(random.Random("aiorequestful-bench-json"), 4242, JSON_BODY_SIZE)


def item_body(item_id: int) -> bytes:
    """The body the loopback server sends for ``/v2/items/{id}``: one API record of about 1 KB."""
    return _padded_item(random.Random(item_id), item_id, 1_000)


# --------------------------------------------------------------------------------------------------
# kernel inputs (what the public layer actually passes)
# --------------------------------------------------------------------------------------------------
#: timer_plan calls as timer.py makes them: (id, args, kwargs). A retry timer (a geometric count timer, as typical
#: use builds one), a wait timer ceiling in small steps, a power ceiling and a long step ceiling.
TIMER_CASES: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("geometric-count-5", ("geometric", 0.5, 2), {"steps": 5}),
    ("step-count-10-int", ("step", 1, 1), {"steps": 10}),
    ("step-ceiling-0.1-to-1", ("step", 0.1, 0.01), {"final": 1.0}),
    ("power-ceiling-to-600", ("power", 1.5, 2), {"final": 600}),
    ("step-ceiling-1-to-300", ("step", 1, 1), {"final": 300}),
]

#: The default handler set's codes (401 re-auth, 429 rate limit, the other 4xx client errors), as RequestHandler
#: builds its table from ``[list(h.status_codes) for h in handlers]``.
DEFAULT_HANDLER_CODES: list[list[int]] = [
    [401],
    [429],
    [code for code in range(400, 500) if code not in (401, 429)],
]

#: The statuses a crawl actually meets, most common first: 200 (no handler: the common miss), 429, 404.
DISPATCH_CASES: list[tuple[str, int]] = [("200-miss", 200), ("429-hit", 429), ("404-hit", 404)]

_CRED_DIGEST = "9f2c1e6b0d4a7c3e5f8a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60"

#: cache_key calls as the cache makes them: (id, method, url without query, query pairs, extra parts).
CACHE_KEY_CASES: list[tuple[str, str, str, list[tuple[str, str]], list[Any]]] = [
    ("item-no-query", "get", "https://api.example.test/v2/items/1234567", [], [_CRED_DIGEST]),
    (
        "search-5-params",
        "GET",
        "https://api.example.test/v2/search",
        [("q", "café straße"), ("type", "track,album"), ("limit", "50"), ("offset", "150"), ("market", "GB")],
        [_CRED_DIGEST, None],
    ),
    (
        "long-url-20-params",
        "GET",
        "https://api.example.test/v2/" + "/".join(f"segment{i}" for i in range(12)),
        [(f"field{i:02d}", f"value-{i}-" + "x" * (i % 7)) for i in range(20)],
        [_CRED_DIGEST, 3, b"\x00\x01\x02"],
    ),
]

#: bucket_take calls: (id, (tokens, updated, now, rate, burst)) - a refill with tokens left, and a caller that
#: finds the bucket empty and is told how long to wait.
BUCKET_CASES: list[tuple[str, tuple[float, float, float, float, float]]] = [
    ("refill", (3.5, 1_000.0, 1_000.25, 10.0, 10.0)),
    ("empty-wait", (-2.0, 1_000.0, 1_000.0, 5.0, 5.0)),
]
