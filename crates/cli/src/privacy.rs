//! `lift privacy`: a person's access and erasure requests, and the audit log, through
//! ingestion's `PrivacyService` (a key with `privacy:admin`).
//!
//! `export` prints NDJSON, one `lift.privacy.v1.ExportResponse` per line in proto
//! JSON: ingestion's `{"event": …}` and `{"link": …}`, then — for an account, from
//! scoring's `GetScores` and `GetScoreHistory` — `{"scores": …}` (current scores
//! with gaming flags), one `{"history": …}` per score-history point and one
//! `{"explanation": …}` per dimension and consecutive pair of points (scoring's
//! `ExplainScoreChange`, or why it gave none), then — from matching's
//! `MatchingPrivacyService.ExportAccount` — one `{"matching": {"offer": …}}`
//! (`eligibility`, `offerTransition`, `rateCard`, `portfolioSeat`,
//! `standingPerk`, `recalibration`, `reportRow`) per row matching holds, and a
//! final `{"summary": …}` that counts them and says what the export does not
//! cover. `erase` is irreversible and asks for `--yes`.

use std::io::Write;

use anyhow::{Context, bail};
use lift_proto::ingest::v1 as ipb;
use lift_proto::matching::v1 as mpb;
use lift_proto::matching::v1::matching_privacy_service_client::MatchingPrivacyServiceClient;
use lift_proto::privacy::v1 as pb;
use lift_proto::privacy::v1::privacy_service_client::PrivacyServiceClient;
use lift_proto::scoring::v1 as spb;
use lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use lift_runtime::client::Channel;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

/// The subject of a request: `network:id`, or a visitor id.
pub fn subject(account: Option<&str>, visitor: Option<&str>) -> anyhow::Result<pb::Subject> {
    let kind = match (account, visitor) {
        (Some(a), None) => {
            let a = lift_domain::AccountId::parse(a)
                .with_context(|| format!("account {a:?} is not network:id (e.g. x:anna)"))?;
            pb::subject::Kind::Account(ipb::AccountRef { network: a.network, id: a.id })
        }
        (None, Some(v)) => pb::subject::Kind::VisitorId(v.to_owned()),
        (Some(_), Some(_)) => bail!("give an account or --visitor, not both"),
        (None, None) => bail!("give an account (network:id) or --visitor ID"),
    };
    Ok(pb::Subject { kind: Some(kind) })
}

/// One message as a line of proto JSON.
fn json_line(msg: &pb::ExportResponse) -> anyhow::Result<String> {
    static POOL: std::sync::LazyLock<Option<DescriptorPool>> =
        std::sync::LazyLock::new(|| DescriptorPool::decode(lift_proto::FILE_DESCRIPTOR_SET).ok());
    let desc = POOL
        .as_ref()
        .and_then(|p| p.get_message_by_name("lift.privacy.v1.ExportResponse"))
        .context("the descriptor set lacks lift.privacy.v1.ExportResponse")?;
    let dynamic = DynamicMessage::decode(desc, msg.encode_to_vec().as_slice())?;
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::new(&mut out);
    dynamic.serialize_with_options(&mut ser, &SerializeOptions::new())?;
    Ok(String::from_utf8(out)?)
}

/// The `not_covered` entries ingestion's summary gives for scoring's and matching's data.
const SCORING_PREFIX: &str = "scoring:";
const MATCHING_PREFIX: &str = "matching:";

/// What an export with scoring's part still does not cover of scoring's data.
pub const SCORING_NOT_COVERED: &str = "scoring: checkpoints (encoded snapshots of the whole scoring state, \
     rebuilt from the ledger events above) are not exported";

/// The services besides ingestion an account's export reads; `None` leaves one out
/// (and its entry stays in the summary's `not_covered`).
#[derive(Debug, Default)]
pub struct Sources<'a> {
    pub scoring: Option<&'a mut ScoringServiceClient<Channel>>,
    pub matching: Option<&'a mut MatchingPrivacyServiceClient<Channel>>,
}

/// Streams the export to `out` as NDJSON: ingestion's part, then (for an account)
/// scoring's and matching's where given, then the summary; returns the summary.
pub async fn export(
    client: &mut PrivacyServiceClient<Channel>,
    sources: Sources<'_>,
    subject: pb::Subject,
    out: &mut impl Write,
) -> anyhow::Result<pb::ExportSummary> {
    let account = match &subject.kind {
        Some(pb::subject::Kind::Account(a)) => Some(a.clone()),
        _ => None,
    };
    let matching_request = match &subject.kind {
        Some(pb::subject::Kind::Account(a)) => {
            Some(mpb::ExportAccountRequest { account: Some(a.clone()), visitor_id: String::new() })
        }
        Some(pb::subject::Kind::VisitorId(v)) => {
            Some(mpb::ExportAccountRequest { account: None, visitor_id: v.clone() })
        }
        None => None,
    };
    let mut stream = client.export(pb::ExportRequest { subject: Some(subject) }).await?.into_inner();
    let mut summary = None;
    while let Some(msg) = stream.message().await? {
        match msg.item {
            Some(pb::export_response::Item::Summary(s)) => summary = Some(s),
            _ => writeln!(out, "{}", json_line(&msg)?)?,
        }
    }
    let mut summary = summary.context("the export ended without its summary")?;
    if let (Some(scoring), Some(account)) = (sources.scoring, &account) {
        let s = export_scores(scoring, account, out).await?;
        summary.score_history_points = s.points;
        summary.score_explanations = s.explanations;
        summary.score_explanations_unavailable = s.unavailable;
        summary.not_covered.retain(|s| !s.starts_with(SCORING_PREFIX));
        summary.not_covered.insert(0, SCORING_NOT_COVERED.to_owned());
    }
    if let (Some(matching), Some(request)) = (sources.matching, matching_request) {
        summary.matching_records = export_matching(matching, request, out).await?;
        summary.not_covered.retain(|s| !s.starts_with(MATCHING_PREFIX));
    }
    let line = pb::ExportResponse { item: Some(pb::export_response::Item::Summary(summary.clone())) };
    writeln!(out, "{}", json_line(&line)?)?;
    Ok(summary)
}

/// Matching's part: every row it holds about the account, each as
/// `{"matching": …}`; its summary is checked and folded into the export's.
async fn export_matching(
    matching: &mut MatchingPrivacyServiceClient<Channel>,
    request: mpb::ExportAccountRequest,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let context = "reading matching's rows about the subject (needs a key with privacy:admin; \
                   --matching-url none leaves matching out)";
    let mut stream = matching.export_account(request).await.context(context)?.into_inner();
    let mut records = 0u64;
    while let Some(msg) = stream.message().await.context(context)? {
        match msg.item {
            Some(mpb::export_account_response::Item::Summary(s)) => {
                let counted = s.eligibility
                    + s.offers
                    + s.offer_transitions
                    + s.rate_cards
                    + s.portfolio_seats
                    + s.standing_perks
                    + s.recalibrations
                    + s.report_rows
                    + s.visitor_rows;
                if counted != records {
                    bail!("matching's export sent {records} rows but its summary counts {counted}");
                }
                return Ok(records);
            }
            Some(_) => {
                records += 1;
                let line = pb::ExportResponse { item: Some(pb::export_response::Item::Matching(msg)) };
                writeln!(out, "{}", json_line(&line)?)?;
            }
            None => {}
        }
    }
    bail!("matching's export ended without its summary")
}

/// What scoring's part of an export held.
#[derive(Debug, Clone, Copy, Default)]
struct ScoringPart {
    points: u64,
    explanations: u64,
    unavailable: u64,
}

/// Scoring's part: the current scores with gaming flags, every history point
/// (newest first), then the explanation of each dimension's change between
/// each consecutive pair of points (newest pair first).
async fn export_scores(
    scoring: &mut ScoringServiceClient<Channel>,
    account: &ipb::AccountRef,
    out: &mut impl Write,
) -> anyhow::Result<ScoringPart> {
    let current = scoring
        .get_scores(spb::GetScoresRequest { accounts: vec![account.clone()] })
        .await
        .context("reading the account's scores from scoring")?
        .into_inner();
    for s in current.accounts {
        let line = pb::ExportResponse { item: Some(pb::export_response::Item::Scores(s)) };
        writeln!(out, "{}", json_line(&line)?)?;
    }
    let mut part = ScoringPart::default();
    // (run id, dimensions of its overall scores) of each point, newest first.
    let mut runs: Vec<(u64, Vec<i32>)> = Vec::new();
    let mut page_token = String::new();
    loop {
        let req = spb::GetScoreHistoryRequest {
            account: Some(account.clone()),
            limit: 1_000,
            page_token: std::mem::take(&mut page_token),
            ..Default::default()
        };
        let page = match scoring.get_score_history(req).await {
            Ok(r) => r.into_inner(),
            // An account scoring never scored has no history.
            Err(s) if s.code() == tonic::Code::NotFound => break,
            Err(s) => return Err(anyhow::Error::new(s).context("reading the account's score history from scoring")),
        };
        for p in page.points {
            part.points += 1;
            let mut dims: Vec<i32> = p.scores.iter().filter(|s| s.topic.is_empty()).map(|s| s.dimension).collect();
            dims.sort_unstable();
            dims.dedup();
            runs.push((p.run_id, dims));
            let line = pb::ExportResponse { item: Some(pb::export_response::Item::History(p)) };
            writeln!(out, "{}", json_line(&line)?)?;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    for pair in runs.windows(2) {
        let ((to_run_id, dims), (from_run_id, _)) = (&pair[0], &pair[1]);
        for &dimension in dims {
            let req = spb::ExplainScoreChangeRequest {
                account: Some(account.clone()),
                dimension,
                from_run_id: *from_run_id,
                to_run_id: *to_run_id,
            };
            let result = match scoring.explain_score_change(req).await {
                Ok(r) => pb::score_change_explanation::Result::Explanation(r.into_inner()),
                Err(s) => {
                    part.unavailable += 1;
                    pb::score_change_explanation::Result::NotAvailable(format!(
                        "scoring answered {:?}: {}",
                        s.code(),
                        s.message()
                    ))
                }
            };
            part.explanations += 1;
            let e = pb::ScoreChangeExplanation {
                account: Some(account.clone()),
                dimension,
                from_run_id: *from_run_id,
                to_run_id: *to_run_id,
                result: Some(result),
            };
            let line = pb::ExportResponse { item: Some(pb::export_response::Item::Explanation(e)) };
            writeln!(out, "{}", json_line(&line)?)?;
        }
    }
    Ok(part)
}

/// Erases the subject.
pub async fn erase(
    client: &mut PrivacyServiceClient<Channel>,
    subject: pb::Subject,
) -> anyhow::Result<pb::EraseResponse> {
    Ok(client.erase(pb::EraseRequest { subject: Some(subject) }).await?.into_inner())
}

/// The whole audit log, oldest first.
pub async fn audit(client: &mut PrivacyServiceClient<Channel>) -> anyhow::Result<Vec<pb::AuditEntry>> {
    let mut all: Vec<pb::AuditEntry> = Vec::new();
    loop {
        let after_id = all.last().map_or(0, |e| e.id);
        let page = client.list_audit(pb::ListAuditRequest { after_id, page_size: 1_000 }).await?.into_inner().entries;
        let done = page.len() < 1_000;
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

/// `2026-12-02 01:02:03Z` for a timestamp.
fn utc(ts: Option<&prost_types::Timestamp>) -> String {
    let Some(ts) = ts else { return "-".into() };
    let (days, secs) = (ts.seconds.div_euclid(86_400), ts.seconds.rem_euclid(86_400));
    let (y, m, d) = lift_domain::time::civil(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// `export`, `erase`, `retention`, or `unspecified` for a value this version does not know.
pub fn action_name(action: i32) -> &'static str {
    match pb::AuditAction::try_from(action) {
        Ok(pb::AuditAction::Export) => "export",
        Ok(pb::AuditAction::Erase) => "erase",
        Ok(pb::AuditAction::Retention) => "retention",
        _ => "unspecified",
    }
}

/// The audit log as a table a person reads.
pub fn audit_table(entries: &[pb::AuditEntry]) -> String {
    if entries.is_empty() {
        return "no privacy requests recorded\n".into();
    }
    let mut s =
        format!("{:>5}  {:<20}  {:<6}  {:>6}  {:<28}  subject (SHA-256)\n", "id", "time", "action", "events", "key");
    for e in entries {
        let action = action_name(e.action);
        s.push_str(&format!(
            "{:>5}  {:<20}  {:<6}  {:>6}  {:<28}  {}\n",
            e.id,
            utc(e.at.as_ref()),
            action,
            e.events,
            format!("{} ({})", e.key_id, e.scope),
            e.subject_hash
        ));
    }
    s
}
