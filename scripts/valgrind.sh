#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# valgrind for the instruction-count part of `make bench` (benches/instructions.py runs clients under callgrind).
#
#   scripts/valgrind.sh install   install Debian's valgrind when `valgrind` is not on PATH (apt-get)
#
# valgrind, callgrind_control and callgrind_annotate all come from the one Debian package. Diagnostics go to
# stderr. Without apt-get (or root/sudo) it says how to install valgrind and fails; the bench then reports the
# instruction counts as not measured instead of failing the whole run.
set -euo pipefail

log() { echo "valgrind.sh: $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        log "need root (or sudo) to run: $*"
        return 1
    fi
}

have_all() {
    command -v valgrind >/dev/null 2>&1 && command -v callgrind_control >/dev/null 2>&1 &&
        command -v callgrind_annotate >/dev/null 2>&1
}

install_valgrind() {
    if have_all; then
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        log "valgrind is not installed and apt-get is not available; install valgrind (with callgrind) yourself"
        return 1
    fi
    log "installing Debian's valgrind"
    export DEBIAN_FRONTEND=noninteractive
    # A stale package index makes the first attempt fail: refresh it and try once more.
    if ! as_root apt-get install -y -q valgrind >&2; then
        as_root apt-get update -q >&2
        as_root apt-get install -y -q valgrind >&2
    fi
    have_all
}

case "${1:-}" in
    install) install_valgrind ;;
    *)
        echo "usage: $0 install" >&2
        exit 2
        ;;
esac
