#!/usr/bin/env bash
# Make sure a Docker engine is reachable on /var/run/docker.sock that testcontainers can use.
#
# Idempotent: exits 0 at once when the engine already answers and accepts the API version
# testcontainers speaks. Otherwise (as root) it installs Debian's `docker.io` if `dockerd` is
# missing, starts `dockerd` in the background on $ENGINE_SOCK (log: $DOCKERD_LOG), and puts
# scripts/docker-api-shim.py on /var/run/docker.sock in front of it (log: $SHIM_LOG).
#
# Why the shim: Debian 12's dockerd is 20.10 (API v1.41); testcontainers 0.27 uses bollard 0.20,
# which always sends API v1.52 requests without negotiating, and dockerd 20.10 rejects those
# ("client version 1.52 is too new"). The shim rewrites the version in each request line.
#
# Environment knobs (all optional):
#   LIFT_DOCKER_API_VERSION   API version the tests' client sends        (default 1.52)
#   LIFT_DOCKER_WAIT_SECS     bound for each wait on the engine          (default 60)
#   LIFT_DOCKERD_FLAGS        extra dockerd flags, tried before the built-in fallbacks
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PUBLIC_SOCK=/var/run/docker.sock
ENGINE_SOCK=/var/run/docker-engine.sock
DOCKERD_LOG=/tmp/dockerd.log
SHIM_LOG=/tmp/docker-api-shim.log
STATE_DIR=/var/run/lift-docker
WANT_API="${LIFT_DOCKER_API_VERSION:-1.52}"
WAIT_SECS="${LIFT_DOCKER_WAIT_SECS:-60}"
PYTHON="$(command -v python3 || true)"

say() { printf '[ensure-docker] %s\n' "$*"; }
die() {
    printf '[ensure-docker] ERROR: %s\n' "$*" >&2
    exit 1
}

# True when the engine behind unix socket $1 answers `docker info`.
engine_up() { docker -H "unix://$1" info >/dev/null 2>&1; }

# True when the engine behind unix socket $1 accepts requests for API version $2.
api_accepts() {
    [ -n "$PYTHON" ] || return 1
    "$PYTHON" - "$1" "$2" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b"GET /v%s/_ping HTTP/1.0\r\nHost: docker\r\n\r\n" % sys.argv[2].encode())
data = b""
while chunk := s.recv(4096):
    data += chunk
sys.exit(0 if data.split(b" ", 2)[1] == b"200" else 1)
EOF
}

# Wait (bounded) until `cmd args...` succeeds; returns non-zero on timeout or when pid $1 dies.
wait_for() {
    local pid="$1" what="$2" i
    shift 2
    for ((i = 0; i < WAIT_SECS * 2; i++)); do
        if "$@"; then
            return 0
        fi
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            say "$what: process $pid exited"
            return 1
        fi
        sleep 0.5
    done
    say "$what: not ready after ${WAIT_SECS}s"
    return 1
}

server_version() { docker -H "unix://$1" version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || echo unknown; }

# --- 1. already fine? -------------------------------------------------------------------------
if [ -n "${DOCKER_HOST:-}" ] && [ "$DOCKER_HOST" != "unix://$PUBLIC_SOCK" ]; then
    if docker info >/dev/null 2>&1; then
        say "DOCKER_HOST=$DOCKER_HOST answers; using it as is (not checking its API version)"
        exit 0
    fi
    say "DOCKER_HOST=$DOCKER_HOST does not answer; setting up the local engine on $PUBLIC_SOCK instead"
    say "(unset DOCKER_HOST afterwards, or tests will keep using the dead host)"
fi

if engine_up "$PUBLIC_SOCK"; then
    if api_accepts "$PUBLIC_SOCK" "$WANT_API"; then
        say "engine ready on $PUBLIC_SOCK: $(server_version "$PUBLIC_SOCK"), accepts API v$WANT_API"
        exit 0
    fi
fi

# --- 2. we need to act: root only -------------------------------------------------------------
if [ "$(id -u)" -ne 0 ]; then
    die "no usable Docker engine on $PUBLIC_SOCK and not root, so none can be started here.
  Either run this script as root (it installs Debian's docker.io and starts dockerd),
  or start an engine yourself and make /var/run/docker.sock (or DOCKER_HOST) point at it.
  testcontainers needs an engine that accepts API v$WANT_API (or this repo's docker-api-shim.py in front)."
fi

[ -n "$PYTHON" ] || die "python3 is required for scripts/docker-api-shim.py (apt-get install -y python3)"

if engine_up "$PUBLIC_SOCK" && [ ! -S "$ENGINE_SOCK" ]; then
    # An older engine that this script did not start owns the default socket. Leave it alone,
    # and put the shim on a side socket in front of it.
    side="$STATE_DIR/docker.sock"
    say "an engine that rejects API v$WANT_API already runs on $PUBLIC_SOCK ($(server_version "$PUBLIC_SOCK")) and was not started by this script"
    mkdir -p "$STATE_DIR"
    if ! api_accepts "$side" "$WANT_API"; then
        setsid "$PYTHON" "$SCRIPT_DIR/docker-api-shim.py" --listen "$side" --upstream "$PUBLIC_SOCK" \
            --wait "$WAIT_SECS" >>"$SHIM_LOG" 2>&1 </dev/null &
        wait_for $! "docker-api-shim" api_accepts "$side" "$WANT_API" ||
            die "docker-api-shim did not come up on $side; see $SHIM_LOG"
    fi
    echo "unix://$side" >"$STATE_DIR/docker_host"
    say "shim on $side; scripts/test.sh exports DOCKER_HOST=unix://$side (do the same to run tests by hand)"
    exit 0
fi

# --- 3. install the engine ----------------------------------------------------------------------
if ! command -v dockerd >/dev/null 2>&1; then
    say "dockerd not found: installing Debian's docker.io (apt-get update + install)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends docker.io >/tmp/apt-docker.io.log 2>&1 ||
        { tail -20 /tmp/apt-docker.io.log >&2; die "apt-get install docker.io failed (log: /tmp/apt-docker.io.log)"; }
    say "installed: $(dockerd --version)"
fi

# --- 4. start dockerd on $ENGINE_SOCK ------------------------------------------------------------
dockerd_pid=""
if [ -s /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    dockerd_pid="$(cat /var/run/docker.pid)"
    say "dockerd already running (pid $dockerd_pid); waiting for it"
    wait_for "$dockerd_pid" "dockerd" engine_up "$ENGINE_SOCK" ||
        die "the running dockerd (pid $dockerd_pid) does not answer on $ENGINE_SOCK; see $DOCKERD_LOG"
else
    # Flag sets tried in order. The defaults work on these machines (overlay2 + iptables-nft);
    # the fallbacks cover kernels without overlayfs or netfilter. With --iptables=false,
    # published ports still reach 127.0.0.1 through docker-proxy.
    attempts=()
    [ -n "${LIFT_DOCKERD_FLAGS:-}" ] && attempts+=("$LIFT_DOCKERD_FLAGS")
    attempts+=("" "--iptables=false" "--iptables=false --storage-driver=vfs")
    started=""
    for flags in "${attempts[@]}"; do
        say "starting dockerd ${flags:-(default flags)} (log: $DOCKERD_LOG)"
        {
            echo "===== $(date -u +%FT%TZ) dockerd -H unix://$ENGINE_SOCK $flags"
        } >>"$DOCKERD_LOG"
        # shellcheck disable=SC2086 # flags are words on purpose
        setsid dockerd -H "unix://$ENGINE_SOCK" --pidfile /var/run/docker.pid $flags \
            >>"$DOCKERD_LOG" 2>&1 </dev/null &
        dockerd_pid=$!
        if wait_for "$dockerd_pid" "dockerd" engine_up "$ENGINE_SOCK"; then
            started=yes
            break
        fi
        say "dockerd ${flags:-(default flags)} failed; last log lines:"
        tail -5 "$DOCKERD_LOG" | sed 's/^/    /'
        if kill -0 "$dockerd_pid" 2>/dev/null; then
            kill "$dockerd_pid" 2>/dev/null || true
            wait_for "" "dockerd $dockerd_pid to stop" bash -c "! kill -0 $dockerd_pid 2>/dev/null" || true
        fi
    done
    [ -n "$started" ] || die "no Docker engine could be started here (tried: default, --iptables=false, vfs storage). See $DOCKERD_LOG."
fi
say "dockerd up (pid $dockerd_pid): $(server_version "$ENGINE_SOCK")"

# --- 5. the API shim on the default socket -----------------------------------------------------
if ! api_accepts "$PUBLIC_SOCK" "$WANT_API"; then
    say "starting docker-api-shim on $PUBLIC_SOCK -> $ENGINE_SOCK (log: $SHIM_LOG)"
    setsid "$PYTHON" "$SCRIPT_DIR/docker-api-shim.py" --listen "$PUBLIC_SOCK" --upstream "$ENGINE_SOCK" \
        --wait "$WAIT_SECS" >>"$SHIM_LOG" 2>&1 </dev/null &
    wait_for $! "docker-api-shim" api_accepts "$PUBLIC_SOCK" "$WANT_API" ||
        { tail -5 "$SHIM_LOG" >&2; die "docker-api-shim did not come up on $PUBLIC_SOCK; see $SHIM_LOG"; }
fi
rm -f "$STATE_DIR/docker_host"

engine_up "$PUBLIC_SOCK" || die "docker info fails through $PUBLIC_SOCK"
say "engine ready on $PUBLIC_SOCK: $(server_version "$PUBLIC_SOCK"), accepts API v$WANT_API"
