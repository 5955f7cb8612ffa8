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

log_name=valgrind.sh
# shellcheck source=scripts/apt_install.sh
. "$(dirname "$0")/apt_install.sh"

have_all() {
    command -v valgrind >/dev/null 2>&1 && command -v callgrind_control >/dev/null 2>&1 &&
        command -v callgrind_annotate >/dev/null 2>&1
}

install_valgrind() {
    if have_all; then
        return 0
    fi
    # valgrind, callgrind_control and callgrind_annotate come from the one package.
    apt_install callgrind_annotate valgrind && have_all
}

case "${1:-}" in
    install) install_valgrind ;;
    *)
        echo "usage: $0 install" >&2
        exit 2
        ;;
esac
