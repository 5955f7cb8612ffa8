#!/usr/bin/env bash
# "Test the newest; keep the oldest working". The main legs run the newest aiohttp and
# aiosqlite; this leg runs the suite (native, slow tests excluded) on the oldest versions pyproject allows:
# aiohttp 3.11, aiosqlite 0.20, orjson 3.9, python-dateutil 2.9, and the extras' Protego 0.3, prometheus-client
# 0.17 and OpenTelemetry 1.30. The package goes in as a pure editable
# install (our build backend's no-Rust path, so that path is exercised too), and the extension that
# `make build-dev` put beside the sources (same interpreter, so the same ABI) is what it imports.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv-oldest"
python=${PYTHON:-python3}
pins=(
    "aiohttp==3.11.18" "aiosqlite==0.20.0" "orjson==3.9.15" "python-dateutil==2.9.0"
    "typing_extensions>=4.6" "pytest>=8" "pytest-asyncio>=0.24" "pytest-timeout>=2.3" "hypothesis>=6.100"
    "pytest-benchmark>=4" "psutil>=5.9" "redis>=5.0" "matplotlib>=3.8" "looptime>=0.9"
    # The optional extras at their oldest allowed versions too, so their tests run here rather than skip.
    "protego==0.3.0" "prometheus-client==0.17.1" "opentelemetry-api==1.30.0" "opentelemetry-sdk==1.30.0"
)
stamp="$venv/.deps-$(printf '%s\n' "${pins[@]}" | sha256sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "${pins[@]}"
    touch "$stamp"
fi
AIOREQUESTFUL_NO_EXTENSIONS=1 "$venv/bin/python" -m pip install --quiet --no-deps -e "$root"
"$venv/bin/python" -c "import aiohttp, aiosqlite; print('oldest leg: aiohttp', aiohttp.__version__, 'aiosqlite', aiosqlite.__version__)"
cd "$root"
AIOREQUESTFUL_REQUIRE_EXTENSIONS=1 "$venv/bin/python" -m pytest --require-native -q -m "not slow" -p no:cacheprovider
