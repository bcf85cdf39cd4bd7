#!/usr/bin/env bash
# Make sure a Docker engine is reachable that testcontainers (the Rust tests) can use.
#
# Idempotent: returns at once when the engine already answers and accepts the API version the
# tests' client speaks. Otherwise, as root, it installs Debian's `docker.io` if `dockerd` is
# missing, starts `dockerd` in the background on $ENGINE_SOCK (log: $DOCKERD_LOG), and starts
# scripts/docker-api-shim.py in front of it on /var/run/docker.sock and on tcp://127.0.0.1:2375
# (log: $SHIM_LOG). It waits on each condition, bounded, and fails saying why.
#
# Why the shim: Debian 12's dockerd is 20.10 (API v1.41). testcontainers 0.27 uses bollard 0.20,
# which always sends API v1.52 requests without negotiating, and dockerd 20.10 rejects those
# ("client version 1.52 is too new"). The shim rewrites the version in each request line.
#
# Why the loopback TCP endpoint: this machine has a /.dockerenv, so testcontainers believes it
# runs inside a container and, with a unix DOCKER_HOST, connects to published ports through the
# bridge gateway (172.17.0.1). With DOCKER_HOST=tcp://127.0.0.1:2375 it connects to 127.0.0.1.
# The endpoint is unauthenticated (root-equivalent for local users), hence loopback only.
#
# Output contract: the DOCKER_HOST the tests should use is written to $STATE_DIR/docker_host
# (scripts/test.sh exports it) and printed as an `export` line for running tests by hand.
#
# Environment knobs (all optional):
#   LIFT_DOCKER_API_VERSION  API version the tests' client sends          (default 1.52)
#   LIFT_DOCKER_WAIT_SECS    bound for each wait                          (default 60)
#   LIFT_DOCKERD_FLAGS       extra dockerd flags, tried before the built-in attempts
#   LIFT_DOCKER_TCP          loopback HOST:PORT of the shim's TCP endpoint (default 127.0.0.1:2375;
#                            set it empty for none: tests then use the unix socket)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PUBLIC_SOCK=/var/run/docker.sock
ENGINE_SOCK=/var/run/docker-engine.sock
STATE_DIR=/var/run/lift-docker
SHIM_PIDFILE="$STATE_DIR/shim.pid"
DOCKERD_LOG=/tmp/dockerd.log
SHIM_LOG=/tmp/docker-api-shim.log
WANT_API="${LIFT_DOCKER_API_VERSION:-1.52}"
WAIT_SECS="${LIFT_DOCKER_WAIT_SECS:-60}"
TCP_ADDR="${LIFT_DOCKER_TCP-127.0.0.1:2375}"
PYTHON="$(command -v python3 || true)"

say() { printf '[ensure-docker] %s\n' "$*"; }
die() {
    printf '[ensure-docker] ERROR: %s\n' "$*" >&2
    exit 1
}

# True when the engine behind unix socket $1 answers `docker info`.
engine_up() { docker -H "unix://$1" info >/dev/null 2>&1; }

# True when the engine behind $1 (a unix socket path, or tcp://HOST:PORT) accepts API version $2.
api_accepts() {
    [ -n "$PYTHON" ] || return 1
    "$PYTHON" - "$1" "$2" <<'EOF' 2>/dev/null
import socket, sys
target = sys.argv[1]
if target.startswith("tcp://"):
    host, _, port = target[len("tcp://"):].rpartition(":")
    s = socket.create_connection((host, int(port)), timeout=5)
else:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(target)
s.sendall(b"GET /v%s/_ping HTTP/1.0\r\nHost: docker\r\n\r\n" % sys.argv[2].encode())
data = b""
while chunk := s.recv(4096):
    data += chunk
sys.exit(0 if data.split(b" ", 2)[1] == b"200" else 1)
EOF
}

# True when the shim endpoints (unix socket $1, and the TCP address if configured) accept $WANT_API.
shim_ok() {
    api_accepts "$1" "$WANT_API" && { [ -z "$TCP_ADDR" ] || api_accepts "tcp://$TCP_ADDR" "$WANT_API"; }
}

# True when process $1 exists and is not a zombie.
running() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# True when pid file $1 names a live process called $2 (pids are reused after a machine restart).
pid_alive() {
    local pid
    [ -s "$1" ] || return 1
    pid="$(cat "$1")"
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && running "$pid"
}

# wait_for PID WHAT CMD...: wait (bounded) until CMD succeeds; fails on timeout or when PID dies.
wait_for() {
    local pid="$1" what="$2" i
    shift 2
    for ((i = 0; i < WAIT_SECS * 5; i++)); do
        if "$@"; then
            return 0
        fi
        if [ -n "$pid" ] && ! running "$pid"; then
            say "$what: process $pid exited"
            return 1
        fi
        sleep 0.2
    done
    say "$what: not ready after ${WAIT_SECS}s"
    return 1
}

server_version() {
    docker -H "unix://$1" version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || echo unknown
}

tests_docker_host() { if [ -n "$TCP_ADDR" ]; then echo "tcp://$TCP_ADDR"; else echo "unix://$1"; fi; }

finish() { # finish UNIX_SOCKET_OF_THE_SHIM
    local host
    host="$(tests_docker_host "$1")"
    mkdir -p "$STATE_DIR"
    echo "$host" >"$STATE_DIR/docker_host"
    say "engine ready: $(server_version "$1"); accepts API v$WANT_API on $1${TCP_ADDR:+ and tcp://$TCP_ADDR}"
    say "tests use: export DOCKER_HOST=$host"
    exit 0
}

# Stop the shim this script started earlier (by its recorded pid), if it still runs.
stop_our_shim() {
    local pid
    [ -s "$SHIM_PIDFILE" ] || return 0
    pid="$(cat "$SHIM_PIDFILE")"
    if grep -q docker-api-shim "/proc/$pid/cmdline" 2>/dev/null; then
        say "restarting docker-api-shim (pid $pid)"
        kill "$pid"
        wait_for "" "docker-api-shim $pid to stop" eval "! running $pid" || true
    fi
    rm -f "$SHIM_PIDFILE"
}

start_shim() { # start_shim LISTEN_SOCKET UPSTREAM_SOCKET
    stop_our_shim
    say "starting docker-api-shim on $1${TCP_ADDR:+ and tcp://$TCP_ADDR} -> $2 (log: $SHIM_LOG)"
    mkdir -p "$STATE_DIR"
    setsid "$PYTHON" "$SCRIPT_DIR/docker-api-shim.py" --listen "$1" --upstream "$2" \
        ${TCP_ADDR:+--listen-tcp "$TCP_ADDR"} --wait "$WAIT_SECS" >>"$SHIM_LOG" 2>&1 </dev/null 9>&- &
    local pid=$!
    echo "$pid" >"$SHIM_PIDFILE"
    wait_for "$pid" "docker-api-shim" shim_ok "$1" ||
        { tail -5 "$SHIM_LOG" >&2; die "docker-api-shim did not come up on $1; see $SHIM_LOG"; }
}

# --- 1. already fine? ---------------------------------------------------------------------------
if [ -n "${DOCKER_HOST:-}" ] && [ "$DOCKER_HOST" != "unix://$PUBLIC_SOCK" ]; then
    if docker info >/dev/null 2>&1; then
        mkdir -p "$STATE_DIR" 2>/dev/null && echo "$DOCKER_HOST" >"$STATE_DIR/docker_host" 2>/dev/null || true
        say "DOCKER_HOST=$DOCKER_HOST answers; using it as it is (its API version is not checked)"
        exit 0
    fi
    say "DOCKER_HOST=$DOCKER_HOST does not answer; setting up the local engine instead"
    unset DOCKER_HOST
fi
if engine_up "$PUBLIC_SOCK" && shim_ok "$PUBLIC_SOCK"; then
    finish "$PUBLIC_SOCK"
fi
if [ -S "$STATE_DIR/docker.sock" ] && engine_up "$STATE_DIR/docker.sock" && shim_ok "$STATE_DIR/docker.sock"; then
    finish "$STATE_DIR/docker.sock"
fi

# --- 2. we need to act: root only ---------------------------------------------------------------
if [ "$(id -u)" -ne 0 ]; then
    die "no usable Docker engine, and not root, so none can be started here. Either:
  - run this script as root (it installs Debian's docker.io, starts dockerd and the API shim), or
  - start an engine yourself that accepts Docker API v$WANT_API (Docker 29 or newer), or put
    scripts/docker-api-shim.py in front of an older one, and point DOCKER_HOST at it."
fi
[ -n "$PYTHON" ] || die "python3 is required for scripts/docker-api-shim.py (apt-get install -y python3)"

# One setup at a time (test.sh and compose-test.sh may run side by side); re-check once we hold it.
# (Daemons started below get `9>&-` so they do not keep holding the lock.)
mkdir -p "$STATE_DIR"
exec 9>"$STATE_DIR/ensure.lock"
flock -w $((WAIT_SECS * 3)) 9 || die "another ensure-docker.sh holds $STATE_DIR/ensure.lock"
if engine_up "$PUBLIC_SOCK" && shim_ok "$PUBLIC_SOCK"; then
    finish "$PUBLIC_SOCK"
fi

if engine_up "$PUBLIC_SOCK" && [ ! -S "$ENGINE_SOCK" ]; then
    # An engine this script did not start owns the default socket and rejects API v$WANT_API:
    # leave it alone, and put the shim in front of it on a side socket.
    say "the engine on $PUBLIC_SOCK ($(server_version "$PUBLIC_SOCK")) rejects API v$WANT_API and was not started by this script"
    start_shim "$STATE_DIR/docker.sock" "$PUBLIC_SOCK"
    finish "$STATE_DIR/docker.sock"
fi

# --- 3. install the engine ------------------------------------------------------------------------
if ! command -v dockerd >/dev/null 2>&1; then
    say "dockerd not found: installing Debian's docker.io (apt-get update + install)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends docker.io >/tmp/apt-docker.io.log 2>&1 ||
        { tail -20 /tmp/apt-docker.io.log >&2; die "apt-get install docker.io failed (log: /tmp/apt-docker.io.log)"; }
    say "installed $(dockerd --version)"
fi

# --- 4. start dockerd on $ENGINE_SOCK --------------------------------------------------------------
dockerd_pid=""
if pid_alive /var/run/docker.pid dockerd; then
    dockerd_pid="$(cat /var/run/docker.pid)"
    say "dockerd already running (pid $dockerd_pid); waiting for it on $ENGINE_SOCK"
    if ! wait_for "$dockerd_pid" "dockerd" engine_up "$ENGINE_SOCK"; then
        pid_alive /var/run/docker.pid dockerd &&
            die "the running dockerd (pid $dockerd_pid) does not answer on $ENGINE_SOCK; see $DOCKERD_LOG"
        dockerd_pid="" # it died meanwhile: start a new one below
    fi
fi
if [ -z "$dockerd_pid" ]; then
    # Flag sets tried in order. Default flags work on these machines (overlay2, iptables-nft,
    # published ports reach 127.0.0.1); the fallbacks cover kernels without netfilter or
    # overlayfs. With --iptables=false, published ports still reach 127.0.0.1 via docker-proxy.
    # Stale pid files (left by a killed engine) that name a reused pid would stop dockerd, or
    # make it wait for a containerd that is not there.
    rm -f /var/run/docker.pid
    pid_alive /var/run/docker/containerd/containerd.pid containerd || rm -f /var/run/docker/containerd/containerd.pid
    attempts=()
    [ -n "${LIFT_DOCKERD_FLAGS:-}" ] && attempts+=("$LIFT_DOCKERD_FLAGS")
    attempts+=("" "--iptables=false" "--iptables=false --storage-driver=vfs")
    started=""
    for flags in "${attempts[@]}"; do
        say "starting dockerd ${flags:-(default flags)} (log: $DOCKERD_LOG)"
        echo "===== $(date -u +%FT%TZ) dockerd -H unix://$ENGINE_SOCK $flags" >>"$DOCKERD_LOG"
        # shellcheck disable=SC2086 # $flags is a list of words on purpose
        setsid dockerd -H "unix://$ENGINE_SOCK" --pidfile /var/run/docker.pid $flags \
            >>"$DOCKERD_LOG" 2>&1 </dev/null 9>&- &
        dockerd_pid=$!
        if wait_for "$dockerd_pid" "dockerd" engine_up "$ENGINE_SOCK"; then
            started=yes
            break
        fi
        say "dockerd ${flags:-(default flags)} failed; last lines of $DOCKERD_LOG:"
        tail -5 "$DOCKERD_LOG" | sed 's/^/    /'
        if running "$dockerd_pid"; then
            kill "$dockerd_pid" 2>/dev/null || true
            wait_for "" "dockerd $dockerd_pid to stop" eval "! running $dockerd_pid" || true
        fi
    done
    [ -n "$started" ] ||
        die "no Docker engine could be started here (tried default flags, --iptables=false, vfs storage); see $DOCKERD_LOG"
fi
say "dockerd up (pid $dockerd_pid): $(server_version "$ENGINE_SOCK")"

# --- 5. the API shim in front of it ----------------------------------------------------------------
shim_ok "$PUBLIC_SOCK" || start_shim "$PUBLIC_SOCK" "$ENGINE_SOCK"
engine_up "$PUBLIC_SOCK" || die "docker info fails through $PUBLIC_SOCK (see $SHIM_LOG and $DOCKERD_LOG)"
finish "$PUBLIC_SOCK"
