#!/usr/bin/env bash
# Lint the protobuf contracts under proto/ with buf (config: buf.yaml at the repo root).
#
#   bash scripts/lint-protos.sh                  # buf lint
#   bash scripts/lint-protos.sh breaking         # buf breaking against the contracts before the
#                                                # last commit that changed proto/ (what CI runs)
#   bash scripts/lint-protos.sh breaking REF     # buf breaking against a git ref, e.g. main
#
# buf comes from the npm package @bufbuild/buf (it ships the native binary), installed once into
# $CACHE_DIR/buf-$BUF_VERSION (outside the repo) and run from there. Needs node + npm.
set -euo pipefail

BUF_VERSION="${LIFT_BUF_VERSION:-1.75.0}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

say() { printf '[lint-protos] %s\n' "$*"; }
die() {
    printf '[lint-protos] ERROR: %s\n' "$*" >&2
    exit 1
}

CACHE_DIR="${LIFT_CACHE_DIR:-/var/cache/lift}"
if ! mkdir -p "$CACHE_DIR" 2>/dev/null || [ ! -w "$CACHE_DIR" ]; then
    CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/lift"
    mkdir -p "$CACHE_DIR"
fi
PREFIX="$CACHE_DIR/buf-$BUF_VERSION"
BUF="$PREFIX/node_modules/.bin/buf"

if ! "$BUF" --version >/dev/null 2>&1; then
    command -v npm >/dev/null 2>&1 || die "npm not found (Debian: apt-get install -y npm)"
    say "installing @bufbuild/buf@$BUF_VERSION into $PREFIX"
    mkdir -p "$PREFIX"
    npm install --prefix "$PREFIX" --no-save --no-audit --no-fund --loglevel=error \
        "@bufbuild/buf@$BUF_VERSION" >/dev/null || die "npm install @bufbuild/buf@$BUF_VERSION failed"
    "$BUF" --version >/dev/null 2>&1 || die "$BUF does not run after install"
fi

if ! find proto -name '*.proto' -print -quit | grep -q .; then
    say "no .proto files under proto/: nothing to lint"
    exit 0
fi

case "${1:-lint}" in
    lint)
        say "buf $("$BUF" --version) lint (buf.yaml: STANDARD rules on proto/)"
        "$BUF" lint
        say "no lint findings"
        ;;
    breaking)
        ref="${2:-}"
        if [ -z "$ref" ]; then
            # The baseline is the contract as it stood just before the last commit that changed
            # proto/: that change, and anything uncommitted on top of it, must not break clients.
            git rev-parse --git-dir >/dev/null 2>&1 || die "not a git checkout: pass a ref or run from a clone"
            last="$(git log -1 --format=%H -- proto/ 2>/dev/null || true)"
            if [ -z "$last" ]; then
                say "SKIPPED buf breaking: no commit in this clone's history changed proto/"
                exit 0
            fi
            ref="$last^"
            say "last commit that changed proto/: $(git log -1 --format='%h %s' "$last" | cut -c1-100)"
        fi
        # A shallow clone may lack the baseline; fetching is not this script's business.
        if ! git rev-parse --verify --quiet "$ref^{commit}" >/dev/null; then
            say "SKIPPED buf breaking: $ref is not in this clone (shallow clone?); run 'git fetch --unshallow' to check"
            exit 0
        fi
        say "buf $("$BUF" --version) breaking against git ref $ref ($(git rev-parse --short "$ref"))"
        # buf reads the ref's tree straight from .git (no checkout); a shallow clone's boundary
        # commit has a tree, so this works whenever the ref resolves.
        "$BUF" breaking --against ".git#ref=$(git rev-parse "$ref")"
        say "no breaking changes against $ref"
        ;;
    *) die "unknown command '$1' (lint | breaking [REF])" ;;
esac
