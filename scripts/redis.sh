#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A throw-away redis-server for the test suite and the fleet demo, never a system service.
#
#   scripts/redis.sh install   install Debian's redis-server when `redis-server` is not on PATH (apt-get)
#   scripts/redis.sh start     install if needed, start a server on 127.0.0.1 on a free port, print its URL
#   scripts/redis.sh stop      stop that server and remove its directory
#   scripts/redis.sh url       print the URL of the running server
#
# Typical use (what .ci/run does):
#   export AIOREQUESTFUL_TEST_REDIS_URL="$(bash scripts/redis.sh start)"
#   trap 'bash scripts/redis.sh stop' EXIT
#
# The server listens on 127.0.0.1 only, has no unix socket, no persistence (no RDB snapshots, no AOF), and
# keeps its config, pidfile, log and URL in $AIOREQUESTFUL_REDIS_DIR (default: $TMPDIR/aiorequestful-redis).
# Diagnostics go to stderr; `start` prints only the URL on stdout.
set -euo pipefail

dir=${AIOREQUESTFUL_REDIS_DIR:-${TMPDIR:-/tmp}/aiorequestful-redis}

log() { echo "redis.sh: $*" >&2; }

log_name=redis.sh
# shellcheck source=scripts/apt_install.sh
. "$(dirname "$0")/apt_install.sh"

install_server() {
    apt_install redis-server redis-server
}

free_port() {
    # Ask the kernel for a free port on 127.0.0.1 (python3 is always there: the project needs it).
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

ping() {
    local port=$1
    if command -v redis-cli >/dev/null 2>&1; then
        [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = "PONG" ]
    else
        python3 - "$port" <<'PY'
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as s:
    s.sendall(b"PING\r\n")
    sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
PY
    fi
}

running() {
    [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null
}

start() {
    if running && [ -f "$dir/url" ]; then
        log "already running (pid $(cat "$dir/redis.pid"))"
        cat "$dir/url"
        return 0
    fi
    install_server
    mkdir -p "$dir"
    chmod 700 "$dir"
    local port attempt
    for attempt in 1 2 3; do
        port=$(free_port)
        cat >"$dir/redis.conf" <<EOF
bind 127.0.0.1
port $port
protected-mode yes
daemonize yes
supervised no
pidfile $dir/redis.pid
logfile $dir/redis.log
dir $dir
save ""
appendonly no
EOF
        rm -f "$dir/redis.pid"
        if redis-server "$dir/redis.conf" >&2; then
            local i
            for i in $(seq 1 100); do
                if ping "$port" 2>/dev/null; then
                    echo "redis://127.0.0.1:$port/0" >"$dir/url"
                    log "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$port (pid $(cat "$dir/redis.pid" 2>/dev/null || echo ?))"
                    cat "$dir/url"
                    return 0
                fi
                sleep 0.05
            done
        fi
        # The port was taken between the probe and the bind (or the server failed): show why and retry.
        log "attempt $attempt failed:"
        tail -n 5 "$dir/redis.log" >&2 2>/dev/null || true
        stop_server quiet
    done
    log "could not start redis-server"
    return 1
}

stop_server() {
    if [ -f "$dir/redis.pid" ]; then
        local pid
        pid=$(cat "$dir/redis.pid")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            local i
            for i in $(seq 1 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.05
            done
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    [ "${1:-}" = quiet ] || log "stopped"
    rm -f "$dir/redis.pid" "$dir/url"
}

case "${1:-}" in
    install) install_server ;;
    start) start ;;
    stop)
        stop_server
        rm -rf "$dir"
        ;;
    url)
        running && cat "$dir/url"
        ;;
    *)
        echo "usage: $0 install|start|stop|url" >&2
        exit 2
        ;;
esac
