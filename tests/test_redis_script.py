# SPDX-License-Identifier: MIT
"""scripts/redis.sh, which CI uses to get a redis-server for the suite: start, url, stop."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .redis_support import redis, sync_client

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "redis.sh"

pytestmark = [
    pytest.mark.skipif(not SCRIPT.exists(), reason="scripts/redis.sh is not part of this tree (e.g. an sdist test)"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
]


def run(command: str, directory: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIOREQUESTFUL_REDIS_DIR": str(directory)}
    return subprocess.run(["bash", str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=60)


def test_start_prints_only_the_url_and_stop_cleans_up(tmp_path: Path) -> None:
    directory = tmp_path / "redis"
    started = run("start", directory)
    try:
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip()
        assert url.startswith("redis://127.0.0.1:") and url.endswith("/0") and "\n" not in url
        client = sync_client(url)
        try:
            assert client.ping() is True
            config = client.config_get("save") | client.config_get("appendonly") | client.config_get("bind")
            assert config == {"save": "", "appendonly": "no", "bind": "127.0.0.1"}
            assert client.config_get("unixsocket")["unixsocket"] == ""
        finally:
            client.close()
        assert run("url", directory).stdout.strip() == url
        again = run("start", directory)  # already running: the same server
        assert again.returncode == 0 and again.stdout.strip() == url
        assert (directory / "redis.pid").exists()
    finally:
        stopped = run("stop", directory)
    assert stopped.returncode == 0, stopped.stderr
    assert not directory.exists()
    with pytest.raises(redis.exceptions.ConnectionError):
        client = sync_client(url)
        try:
            client.ping()
        finally:
            client.close()


def test_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    result = run("restart", tmp_path)
    assert result.returncode == 2 and "usage" in result.stderr
