#!/usr/bin/env bash
# Release artefacts: one wheel per CPython (3.11, 3.12, 3.13) with the Rust kernels, plus the sdist.
#
# Built from a clean checkout of HEAD (uncommitted edits never reach a release), with maturin's default
# "lowest manylinux tag the binary qualifies for", then checked by auditwheel (PyPI's tool) and installed
# each into a fresh venv of its own Python, where a smoke test requires the native kernels and sends a real
# request through RequestHandler to a server on 127.0.0.1.
#
# Per-version wheels rather than one abi3 wheel: the JSON kernel builds Python objects through the full
# CPython API, and the limited API would give up the faster object construction it relies on.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/dist}
work=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$work/src" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

find_python() {
    local version=$1 candidate
    for candidate in "python$version" /root/.pyenv/versions/"$version".*/bin/"python$version"; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$version'.split('.')))" 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "no CPython $version on this machine" >&2
    return 1
}

pythons=()
for version in 3.11 3.12 3.13; do
    pythons+=("$(find_python "$version")")
done

git -C "$root" worktree add --detach "$work/src" HEAD >/dev/null
mkdir -p "$out"
rm -f "$out"/aiorequestful-*.whl "$out"/aiorequestful-*.tar.gz
maturin=$root/.venv/bin/maturin
args=()
for py in "${pythons[@]}"; do args+=(-i "$py"); done
# CARGO_TARGET_DIR shared with the dev build: only what changed is recompiled.
CARGO_TARGET_DIR=$root/target "$maturin" build --release --strip --quiet --manifest-path "$work/src/Cargo.toml" \
    --out "$out" "${args[@]}"
"$maturin" sdist --manifest-path "$work/src/Cargo.toml" --out "$out" >/dev/null

"${pythons[0]}" -m venv "$work/tools"
"$work/tools/bin/python" -m pip install --quiet --upgrade pip auditwheel
for wheel in "$out"/aiorequestful-*.whl; do
    "$work/tools/bin/auditwheel" show "$wheel" | tr '\n' ' ' | sed 's/  */ /g'
    echo
    case "$(basename "$wheel")" in
        *manylinux*) ;;
        *) echo "$wheel has no manylinux tag" >&2; exit 1 ;;
    esac
done

for py in "${pythons[@]}"; do
    tag=$("$py" -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")
    wheel=$(ls "$out"/aiorequestful-*-"$tag"-*.whl)
    "$py" -m venv "$work/venv-$tag"
    "$work/venv-$tag/bin/python" -m pip install --quiet --upgrade pip
    "$work/venv-$tag/bin/python" -m pip install --quiet "$wheel"
    (cd "$work" && AIOREQUESTFUL_REQUIRE_EXTENSIONS=1 "$work/venv-$tag/bin/python" "$root/scripts/smoke_wheel.py")
done
ls -l "$out"
