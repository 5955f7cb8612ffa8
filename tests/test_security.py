# SPDX-License-Identifier: MIT
"""The one list of secret-bearing names and the URL redaction every log line and message uses."""

from __future__ import annotations

import pytest
from yarl import URL

from aiorequestful import security
from aiorequestful.security import (
    REDACTED,
    add_secret_headers,
    add_secret_query_names,
    is_secret_header,
    is_secret_key,
    redact_url,
)


@pytest.fixture(autouse=True)
def _restore_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(security, "_headers", security._headers)
    monkeypatch.setattr(security, "_query_names", security._query_names)


@pytest.mark.parametrize("name", ["Authorization", "x-api-key", "X-API-KEY", "Cookie", "Proxy-Authorization"])
def test_default_secret_headers_case_insensitive(name: str) -> None:
    assert is_secret_header(name)


def test_ordinary_headers_are_not_secret() -> None:
    assert not is_secret_header("Accept")
    assert not is_secret_key("page")


def test_added_header_is_secret_everywhere() -> None:
    assert not is_secret_header("X-Tenant-Key")
    add_secret_headers("X-Tenant-Key")
    assert is_secret_header("x-tenant-key")
    assert "x-tenant-key" in security.secret_headers()
    assert is_secret_key("X-Tenant-Key")


@pytest.mark.parametrize("bad", ["", "  ", 3, None])
def test_bad_names_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="non-empty string"):
        add_secret_headers(bad)  # type: ignore[arg-type]


def test_redact_url_masks_userinfo_and_secret_query() -> None:
    text = redact_url("http://alice:hunter2@example.test/a?key=K1&page=2&Signature=S1&token=T1&sig=G")
    for secret in ("alice", "hunter2", "K1", "S1", "T1", "=G"):
        assert secret not in text
    assert text.startswith(f"http://{REDACTED}@example.test/a?")
    assert "page=2" in text


def test_redact_url_leaves_plain_urls_alone() -> None:
    assert redact_url(URL("http://example.test/a?page=2")) == "http://example.test/a?page=2"


def test_added_query_name_is_masked() -> None:
    assert "v1" in redact_url("http://example.test/?tenant=v1")
    add_secret_query_names("tenant")
    assert "v1" not in redact_url("http://example.test/?tenant=v1")
