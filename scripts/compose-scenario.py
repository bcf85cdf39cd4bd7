#!/usr/bin/env python3
"""Drive a scenario across Lift's containers with a generated Python gRPC client.

Used by scripts/compose-test.sh against the Compose stack (each service in its own
container, talking to the others over the Compose network):

  1. health: grpc.health.v1 reports SERVING for "" and each service's full name;
  2. ingest: a small network (creators, fans, posts, engagements, follows) in one batch,
     every event accepted; the same batch again is all duplicates (idempotency);
  3. scores appear: scoring consumes the ledger from ingestion and GetScores answers for
     every creator, as of the ledger head;
  4. a brand (API key created in the matching container) creates a campaign, which
     matches at least one eligible creator; without the key matching says UNAUTHENTICATED.

Stubs are generated at run time from proto/ with grpcio-tools. Exits non-zero with a
message naming the step on the first failure.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

RPC_TIMEOUT = 15.0
NETWORK = "compose"


class StepFailed(Exception):
    pass


def step(msg: str) -> None:
    print(f"[compose-scenario] {msg}", flush=True)


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise StepFailed(msg)


def generate_stubs(proto_dir: str, out_dir: str) -> None:
    from grpc_tools import protoc

    import grpc_tools

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    protos = []
    for root, _, files in os.walk(proto_dir):
        protos += [os.path.relpath(os.path.join(root, f), proto_dir) for f in files if f.endswith(".proto")]
    check(bool(protos), f"no .proto files under {proto_dir}")
    rc = protoc.main(
        ["protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"]
        + sorted(protos)
    )
    check(rc == 0, f"grpc_tools.protoc failed ({rc}) on {protos}")
    sys.path.insert(0, out_dir)


def ts(dt: datetime):
    from google.protobuf.timestamp_pb2 import Timestamp

    t = Timestamp()
    t.FromDatetime(dt)
    return t


def wait_for(what: str, timeout: float, fn):
    """Calls fn() until it returns a truthy value; fails the step after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            got = fn()
            if got:
                return got
            last = "condition not met yet"
        except grpc.RpcError as e:
            last = f"{e.code().name}: {e.details()}"
        if time.monotonic() > deadline:
            raise StepFailed(f"{what}: not reached within {timeout:.0f}s (last: {last})")
        time.sleep(0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ingest", required=True, help="host:port of ingestion")
    ap.add_argument("--scoring", required=True, help="host:port of scoring")
    ap.add_argument("--matching", required=True, help="host:port of matching")
    ap.add_argument("--api-key", required=True, help="a brand's API key (lift brands create)")
    ap.add_argument("--client-key", default="",
                    help="key for ingestion and scoring calls (lift keys create --scope ingest:write "
                         "--scope ingest:read --scope scores:read); empty when authentication is off")
    ap.add_argument("--proto-dir", required=True)
    ap.add_argument("--scores-timeout", type=float, default=120.0)
    a = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="lift-stubs-") as gen:
        generate_stubs(a.proto_dir, gen)
        ingest_pb2 = importlib.import_module("lift.ingest.v1.ingest_pb2")
        ingest_grpc = importlib.import_module("lift.ingest.v1.ingest_pb2_grpc")
        scoring_pb2 = importlib.import_module("lift.scoring.v1.scoring_pb2")
        scoring_grpc = importlib.import_module("lift.scoring.v1.scoring_pb2_grpc")
        matching_pb2 = importlib.import_module("lift.matching.v1.matching_pb2")
        matching_grpc = importlib.import_module("lift.matching.v1.matching_pb2_grpc")

        chans = {name: grpc.insecure_channel(addr) for name, addr in
                 (("ingest", a.ingest), ("scoring", a.scoring), ("matching", a.matching))}

        # 1. health ------------------------------------------------------------------------------
        for name, svc in (("ingest", "lift.ingest.v1.IngestService"),
                          ("scoring", "lift.scoring.v1.ScoringService"),
                          ("matching", "lift.matching.v1.MatchingService")):
            h = health_pb2_grpc.HealthStub(chans[name])
            for s in ("", svc):
                r = h.Check(health_pb2.HealthCheckRequest(service=s), timeout=RPC_TIMEOUT)
                check(r.status == health_pb2.HealthCheckResponse.SERVING,
                      f"health of {name} for {s or '(server)'!r}: {health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)}")
        step("health: all three services SERVING (server and named service)")

        # 2. ingest ------------------------------------------------------------------------------
        ingest = ingest_grpc.IngestServiceStub(chans["ingest"])
        cmd = (("x-api-key", a.client_key),) if a.client_key else ()
        if a.client_key:
            try:
                ingest.GetLedgerInfo(ingest_pb2.GetLedgerInfoRequest(), timeout=RPC_TIMEOUT)
                raise StepFailed("GetLedgerInfo without x-api-key succeeded; expected UNAUTHENTICATED")
            except grpc.RpcError as e:
                check(e.code() == grpc.StatusCode.UNAUTHENTICATED,
                      f"GetLedgerInfo without x-api-key: expected UNAUTHENTICATED, got {e.code().name}: {e.details()}")
            step("ingest: a call without x-api-key is UNAUTHENTICATED")
        now = datetime.now(timezone.utc).replace(microsecond=0)
        creators = [f"creator{i}" for i in range(3)]
        fans = [f"fan{i}" for i in range(9)]
        ref = lambda i: ingest_pb2.AccountRef(network=NETWORK, id=i)  # noqa: E731
        events = []

        def ev(kind: str, minutes_ago: int, **body):
            n = len(events)
            events.append(ingest_pb2.Event(event_id=f"compose-{n:04d}", source="compose-test",
                                           occurred_at=ts(now - timedelta(minutes=minutes_ago)), **{kind: body[kind]}))

        for i, acc in enumerate(creators + fans):
            ev("account", 600, account=ingest_pb2.AccountUpsert(
                account=ref(acc), handle=f"@{acc}", display_name=acc.title(),
                reported_followers=1000 * (3 - i) if acc in creators else 50,
                language="en", region="DE", created_at=ts(now - timedelta(days=700 + i))))
        for c in creators:
            for p in range(2):
                ev("post", 300 - p, post=ingest_pb2.Post(author=ref(c), post_id=f"{c}-post{p}", topics=["coffee"]))
        kinds = [ingest_pb2.ENGAGEMENT_KIND_LIKE, ingest_pb2.ENGAGEMENT_KIND_REPOST, ingest_pb2.ENGAGEMENT_KIND_REPLY]
        for fi, f in enumerate(fans):
            for ci, c in enumerate(creators):
                if (fi + ci) % 3 == 2 and ci != 0:
                    continue  # creator0 draws the most engagement
                ev("engagement", 200 - fi, engagement=ingest_pb2.Engagement(
                    kind=kinds[(fi + ci) % 3], actor=ref(f), post_id=f"{c}-post{fi % 2}", target=ref(c)))
                ev("follow", 250 - fi, follow=ingest_pb2.Follow(follower=ref(f), followee=ref(c)))
        batch = ingest_pb2.IngestBatchRequest(events=events)
        r = ingest.IngestBatch(batch, metadata=cmd, timeout=RPC_TIMEOUT)
        bad = [(x.index, list(x.violations)) for x in r.results if x.outcome != ingest_pb2.EVENT_OUTCOME_ACCEPTED]
        check(r.accepted == len(events) and r.rejected == 0 and not bad,
              f"IngestBatch: accepted {r.accepted}/{len(events)}, rejected {r.rejected}: {bad[:3]}")
        step(f"ingest: {r.accepted} events accepted (offsets {min(x.offset for x in r.results)}.."
             f"{max(x.offset for x in r.results)})")
        r2 = ingest.IngestBatch(batch, metadata=cmd, timeout=RPC_TIMEOUT)
        check(r2.duplicates == len(events) and r2.accepted == 0,
              f"IngestBatch replay: expected {len(events)} duplicates, got accepted={r2.accepted} duplicates={r2.duplicates}")
        step(f"ingest: replaying the batch gives {r2.duplicates} duplicates, nothing new")
        info = ingest.GetLedgerInfo(ingest_pb2.GetLedgerInfoRequest(), metadata=cmd, timeout=RPC_TIMEOUT)
        check(info.events >= len(events), f"GetLedgerInfo: {info.events} events, expected >= {len(events)}")
        head = info.head_offset
        step(f"ingest: ledger head {head}, {info.events} events")

        # 3. scores appear -----------------------------------------------------------------------
        scoring = scoring_grpc.ScoringServiceStub(chans["scoring"])
        t0 = time.monotonic()

        def scored():
            resp = scoring.GetScores(scoring_pb2.GetScoresRequest(accounts=[ref(c) for c in creators]),
                                     metadata=cmd, timeout=RPC_TIMEOUT)
            if resp.unknown or len(resp.accounts) != len(creators):
                return None
            if any(acc.as_of_offset < head for acc in resp.accounts):
                return None
            return resp

        resp = wait_for("scores for every creator as of the ledger head", a.scores_timeout, scored)
        for acc in resp.accounts:
            check(len(acc.scores) > 0, f"GetScores: {acc.account.id} has no scores")
            for s in acc.scores:
                check(0.0 <= s.value <= 100.0 and 0.0 <= s.percentile <= 100.0,
                      f"GetScores: {acc.account.id} {scoring_pb2.Dimension.Name(s.dimension)} out of range: {s}")
            check(acc.model_version != "", f"GetScores: {acc.account.id} has no model version")
        dims = sorted({scoring_pb2.Dimension.Name(s.dimension) for acc in resp.accounts for s in acc.scores if not s.topic})
        step(f"scoring: scores for {len(resp.accounts)} creators as of offset >= {head} after "
             f"{time.monotonic() - t0:.1f}s (model {resp.accounts[0].model_version}; {', '.join(dims)})")

        # 4. brand, campaign, match ------------------------------------------------------------
        matching = matching_grpc.MatchingServiceStub(chans["matching"])
        spec = matching_pb2.CampaignSpec(
            name="Compose test: coffee launch",
            objective=matching_pb2.OBJECTIVE_REACH,
            perk="a bag of coffee",
            unit_cost=1500,
            budget=15000,
            currency="EUR",
            criteria=[matching_pb2.Criterion(dimension=scoring_pb2.DIMENSION_REACH, min_percentile=0.0)],
            min_authenticity=0.0,
            holdout_share=0.0,
            attribution_window_secs=7 * 24 * 3600,
        )
        try:
            matching.CreateCampaign(matching_pb2.CreateCampaignRequest(spec=spec), timeout=RPC_TIMEOUT)
            raise StepFailed("CreateCampaign without x-api-key succeeded; expected UNAUTHENTICATED")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.UNAUTHENTICATED,
                  f"CreateCampaign without x-api-key: expected UNAUTHENTICATED, got {e.code().name}: {e.details()}")
        step("matching: a call without x-api-key is UNAUTHENTICATED")
        md = (("x-api-key", a.api_key),)
        created = matching.CreateCampaign(matching_pb2.CreateCampaignRequest(spec=spec), metadata=md,
                                          timeout=RPC_TIMEOUT)
        cid = created.campaign.id
        check(cid != "", "CreateCampaign returned no campaign id")
        step(f"matching: campaign {cid} created")
        m = matching.MatchCampaign(matching_pb2.MatchCampaignRequest(campaign_id=cid, page_size=20), metadata=md,
                                   timeout=RPC_TIMEOUT)
        check(m.total_eligible >= 1 and len(m.eligible) >= 1,
              f"MatchCampaign: total_eligible={m.total_eligible}, {len(m.eligible)} candidates; expected >= 1")
        check(not m.stale, "MatchCampaign answered from a stale snapshot: scoring unreachable from matching?")
        for cand in m.eligible:
            check(cand.eligible, f"MatchCampaign: {cand.account.id} listed as eligible but eligible=false")
            check(all(c.passed for c in cand.criteria),
                  f"MatchCampaign: {cand.account.id} eligible with a failed criterion: {list(cand.criteria)}")
        top = ", ".join(f"{c.rank}. {c.account.id}" for c in m.eligible[:5])
        step(f"matching: {m.total_eligible} eligible (top: {top}), model {m.model_version}, as of {m.as_of_offset}")
        listed = matching.ListCampaigns(matching_pb2.ListCampaignsRequest(page_size=50), metadata=md,
                                        timeout=RPC_TIMEOUT)
        check(any(c.id == cid for c in listed.campaigns), f"ListCampaigns does not list {cid}")

        for c in chans.values():
            c.close()
    step("scenario passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StepFailed as e:
        print(f"[compose-scenario] FAILED: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except grpc.RpcError as e:
        print(f"[compose-scenario] FAILED: RPC error {e.code().name}: {e.details()}", file=sys.stderr, flush=True)
        sys.exit(1)
