#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Sourced by the scripts that install a Debian package the project's tests or benches need (redis.sh, valgrind.sh):
#
#   apt_install TOOL PACKAGE   install PACKAGE with apt-get as root (or through sudo) unless TOOL is on PATH
#
# Diagnostics go to stderr, prefixed with $log_name. A stale package index makes the first attempt fail, so the
# index is refreshed and the install tried once more.

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        echo "${log_name:-apt_install}: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

apt_install() {
    local tool=$1 package=$2
    if command -v "$tool" >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "${log_name:-apt_install}: $tool is not installed and apt-get is not available; install $package yourself" >&2
        return 1
    fi
    echo "${log_name:-apt_install}: installing Debian's $package" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! as_root apt-get install -y -q "$package" >&2; then
        as_root apt-get update -q >&2
        as_root apt-get install -y -q "$package" >&2
    fi
    command -v "$tool" >/dev/null 2>&1
}
