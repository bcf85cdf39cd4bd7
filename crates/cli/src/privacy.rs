//! `lift privacy`: a person's access and erasure requests, and the audit log, through
//! ingestion's `PrivacyService` (a key with `privacy:admin`).
//!
//! `export` prints NDJSON, one `lift.privacy.v1.ExportResponse` per line in proto
//! JSON (`{"event": …}`, `{"link": …}`, and a final `{"summary": …}` that says what
//! the export does not cover). `erase` is irreversible and asks for `--yes`.

use std::io::Write;

use anyhow::{Context, bail};
use lift_proto::ingest::v1 as ipb;
use lift_proto::privacy::v1 as pb;
use lift_proto::privacy::v1::privacy_service_client::PrivacyServiceClient;
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

/// Streams the export to `out` as NDJSON; returns its summary.
pub async fn export(
    client: &mut PrivacyServiceClient<Channel>,
    subject: pb::Subject,
    out: &mut impl Write,
) -> anyhow::Result<pb::ExportSummary> {
    let mut stream = client.export(pb::ExportRequest { subject: Some(subject) }).await?.into_inner();
    let mut summary = None;
    while let Some(msg) = stream.message().await? {
        writeln!(out, "{}", json_line(&msg)?)?;
        if let Some(pb::export_response::Item::Summary(s)) = msg.item {
            summary = Some(s);
        }
    }
    summary.context("the export ended without its summary")
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
