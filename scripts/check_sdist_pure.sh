#!/usr/bin/env bash
# The sdist must install on a machine with no Rust toolchain and give a working pure install.
# Builds the sdist as a release would (maturin), hides every cargo from PATH, installs it into a fresh venv
# (on the newest CPython this machine has, so a second Python version is exercised too), checks that the
# twin is what got installed, and runs the whole suite against that install.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$root/.venv/bin/maturin" sdist --out "$work/dist" --manifest-path "$root/Cargo.toml" >/dev/null
sdist=$(ls "$work"/dist/aiorequestful-*.tar.gz)

clean_path=$(tr ':' '\n' <<<"$PATH" | while read -r dir; do
    [ -n "$dir" ] && [ ! -e "$dir/cargo" ] && [ ! -e "$dir/rustc" ] && echo "$dir"
done | paste -sd: -)

py=""
for candidate in python3.13 python3.12 /root/.pyenv/versions/3.13*/bin/python3.13 /root/.pyenv/versions/3.12*/bin/python3.12 python3; do
    if PATH="$clean_path" command -v "$candidate" >/dev/null 2>&1 && PATH="$clean_path" "$candidate" -c "import sys" 2>/dev/null; then
        py=$candidate
        break
    fi
done
echo "sdist pure check: $(PATH="$clean_path" "$py" --version) without cargo: $sdist"

PATH="$clean_path" "$py" -m venv "$work/venv"
if PATH="$clean_path" command -v cargo >/dev/null 2>&1; then
    echo "cargo is still on PATH" >&2
    exit 1
fi
PATH="$clean_path" "$work/venv/bin/python" -m pip install --quiet --upgrade pip
PATH="$clean_path" "$work/venv/bin/python" -m pip install --quiet "${sdist}[test]"

"$work/venv/bin/python" - <<'PY'
import importlib.util
import aiorequestful._backend as backend
assert importlib.util.find_spec("aiorequestful._native") is None, "a native module was installed"
assert not backend.NATIVE, "the pure install did not select the twin"
print("pure install ok:", backend.kernels.__name__)
PY

cp -r "$root/tests" "$root/benches" "$root/pyproject.toml" "$root/README.md" "$work/"
cd "$work"
# Slow tests (long crawls at fixed rates) already ran in the native and pure legs; this leg is about the install.
PATH="$clean_path" "$work/venv/bin/python" -m pytest --no-native -q -m "not slow" -p no:cacheprovider
