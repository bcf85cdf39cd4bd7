#!/usr/bin/env bash
# Smoke-test the local PostgreSQL image the way testcontainers uses it:
# start it with a published port on 127.0.0.1 and `-c fsync=off`, wait (bounded) until
# "database system is ready to accept connections" is on BOTH stdout and stderr, connect over
# TCP with a password, then remove the container. Exits non-zero with the container's log if
# anything is off.
#
#   scripts/check-postgres-image.sh [image:tag]     (default: $LIFT_TEST_PG_IMAGE or lift/postgres:15)
set -euo pipefail

IMAGE="${1:-${LIFT_TEST_PG_IMAGE:-lift/postgres:15}}"
READY='database system is ready to accept connections'
WAIT_SECS="${LIFT_PG_CHECK_WAIT_SECS:-60}"

say() { printf '[check-postgres-image] %s\n' "$*"; }

cid="$(docker run -d -p 127.0.0.1::5432 -e POSTGRES_PASSWORD=lift-check "$IMAGE" -c fsync=off)"
cleanup() { docker rm -f "$cid" >/dev/null 2>&1 || true; }
trap cleanup EXIT
fail() {
    printf '[check-postgres-image] FAILED: %s\n--- container stdout:\n' "$*" >&2
    docker logs "$cid" 2>/dev/null | tail -20 >&2 || true
    echo '--- container stderr:' >&2
    docker logs "$cid" 2>&1 >/dev/null | tail -20 >&2 || true
    exit 1
}

start=$SECONDS
out=0 err=0
while ((SECONDS - start < WAIT_SECS)); do
    out="$(docker logs "$cid" 2>/dev/null | grep -c "$READY" || true)"
    err="$(docker logs "$cid" 2>&1 >/dev/null | grep -c "$READY" || true)"
    if [ "$out" -ge 1 ] && [ "$err" -ge 1 ]; then
        break
    fi
    [ "$(docker inspect -f '{{.State.Running}}' "$cid")" = true ] || fail "container exited"
    sleep 0.2
done
[ "$out" -ge 1 ] && [ "$err" -ge 1 ] || fail "no ready line on both streams after ${WAIT_SECS}s (stdout: $out, stderr: $err)"

addr="$(docker port "$cid" 5432/tcp | head -1)"
host="${addr%:*}"
port="${addr##*:}"
if command -v psql >/dev/null 2>&1; then
    got="$(PGPASSWORD=lift-check PGCONNECT_TIMEOUT=10 psql -h "$host" -p "$port" -U postgres -d postgres \
        -Atc 'select 1 + 1' 2>&1)" || fail "psql could not connect to $host:$port: $got"
    [ "$got" = 2 ] || fail "psql answered '$got', expected 2"
    how="psql over TCP with password"
else
    # No psql on this machine: a PostgreSQL SSLRequest must be answered with 'N' (no TLS).
    python3 - "$host" "$port" <<'EOF' || fail "no PostgreSQL protocol answer on $host:$port"
import socket, struct, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as s:
    s.sendall(struct.pack("!ii", 8, 80877103))
    sys.exit(0 if s.recv(1) == b"N" else 1)
EOF
    how="PostgreSQL protocol probe (no psql installed)"
fi
say "$IMAGE OK: ready line on stdout ($out) and stderr ($err) after $((SECONDS - start))s, reached $host:$port via $how"
