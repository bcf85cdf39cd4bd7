#!/usr/bin/env bash
# Fails when the crate graph breaks Lift's layering (docs/architecture.md, "Layering"):
#   - lift-domain and lift-store must not depend on lift-proto: wire types stop at each
#     service's edge;
#   - a service crate (lift-ingest, lift-scoring, lift-matching, lift-collect when it exists)
#     must not depend on another service crate except as a dev-dependency: tests may start a
#     real neighbour, code talks to it over gRPC only.
# Reads `cargo metadata --no-deps` (no build; about a second).
#
# KNOWN_EXCEPTIONS lists edges that break a rule for a while and are being removed (none today;
# write `from->to`, space-separated, with the issue that removes it in this comment). An
# exception that no longer applies also fails the check, so the list only shrinks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WIRE_FREE="lift-domain lift-store"
SERVICES="lift-ingest lift-scoring lift-matching lift-collect"
KNOWN_EXCEPTIONS=""

meta="$(mktemp)"
trap 'rm -f "$meta"' EXIT
cargo metadata --format-version 1 --no-deps >"$meta"

WIRE_FREE="$WIRE_FREE" SERVICES="$SERVICES" KNOWN_EXCEPTIONS="$KNOWN_EXCEPTIONS" python3 - "$meta" <<'PY'
import json, os, sys

meta = json.load(open(sys.argv[1]))
wire_free = set(os.environ["WIRE_FREE"].split())
services = set(os.environ["SERVICES"].split())
exceptions = set(os.environ["KNOWN_EXCEPTIONS"].split())
packages = {p["name"]: p for p in meta["packages"]}

problems, excepted = [], set()
for name in sorted(wire_free):
    if name not in packages:
        problems.append(f"{name}: named in scripts/check-layering.sh but not in the workspace")
for name, pkg in sorted(packages.items()):
    for dep in pkg["dependencies"]:
        kind = dep.get("kind") or "normal"  # null = normal; "build"; "dev"
        if kind == "dev":
            continue
        target = dep["name"]
        edge = f"{name}->{target}"
        broken = None
        if name in wire_free and target == "lift-proto":
            broken = (f"{name} depends on lift-proto ({kind}): wire types stop at the service's edge; "
                      "domain and store take domain types and bytes")
        elif name in services and target in services and target != name:
            broken = (f"service {name} depends on service {target} ({kind}): services talk over gRPC; "
                      "share code through lift-domain, lift-store or lift-runtime")
        if broken is None:
            continue
        if edge in exceptions:
            excepted.add(edge)
        else:
            problems.append(broken)
for stale in sorted(exceptions - excepted):
    problems.append(f"known exception {stale} no longer applies: remove it from KNOWN_EXCEPTIONS")

if problems:
    print("layering check failed:", file=sys.stderr)
    for p in problems:
        print(f"  - {p}", file=sys.stderr)
    sys.exit(1)
present = sorted(services & packages.keys())
print(f"layering ok: {len(packages)} crates; no service crate depends on another ({', '.join(present)}); "
      f"{', '.join(sorted(wire_free))} free of lift-proto except the known exceptions "
      f"({', '.join(sorted(excepted)) or 'none'})")
PY
