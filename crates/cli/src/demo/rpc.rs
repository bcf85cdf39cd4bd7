//! The calls the demo makes against the stack, shared with the end-to-end
//! tests: a brand's key on a request, streaming events, waiting for scoring,
//! registering simulated links and paging through every score.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lift_proto::{
    ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient},
    scoring::v1::{self as spb, scoring_service_client::ScoringServiceClient},
};
use lift_runtime::client::Channel;
use tonic::Request;

use crate::dataset;

/// One line about an import: rows, events, outcomes and rate.
pub fn import_summary(r: &lift_ingest::import::ImportReport) -> String {
    format!(
        "{} rows -> {} events for {} accounts ({} accepted, {} duplicates, {} rejected) in {:.1}s ({:.0} events/s)",
        r.rows,
        r.events,
        r.accounts,
        r.accepted,
        r.duplicates,
        r.rejected,
        r.elapsed.as_secs_f64(),
        r.events_per_sec()
    )
}

/// Adds the brand's API key to a request.
pub fn with_key<T>(msg: T, key: &str) -> anyhow::Result<Request<T>> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("x-api-key", key.parse().context("API key is not valid metadata")?);
    Ok(r)
}

/// Sends events over `IngestStream` in batches; returns (accepted, duplicates).
pub async fn stream_events(
    client: &mut IngestServiceClient<Channel>,
    events: Vec<ipb::Event>,
    batch: usize,
) -> anyhow::Result<(u64, u64)> {
    let batches: Vec<ipb::IngestStreamRequest> =
        events.chunks(batch.max(1)).map(|c| ipb::IngestStreamRequest { events: c.to_vec() }).collect();
    let resp = client.ingest_stream(tokio_stream::iter(batches)).await?.into_inner();
    if resp.rejected > 0 {
        let first = resp.rejections.first().map(|r| format!("{r:?}")).unwrap_or_default();
        bail!("{} events were rejected, first: {first}", resp.rejected);
    }
    Ok((resp.accepted, resp.duplicates))
}

/// Waits until scoring has scored the whole ledger, or fails after `timeout`.
pub async fn wait_scored(
    ingest: &mut IngestServiceClient<Channel>,
    scoring: &mut ScoringServiceClient<Channel>,
    timeout: Duration,
) -> anyhow::Result<spb::GetModelResponse> {
    let head = ingest.get_ledger_info(ipb::GetLedgerInfoRequest {}).await?.into_inner().head_offset;
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(m) = scoring.get_model(spb::GetModelRequest {}).await {
            let m = m.into_inner();
            if m.as_of_offset >= head && m.latest_run_id > 0 {
                return Ok(m);
            }
        }
        if Instant::now() > deadline {
            bail!("scoring did not reach ledger offset {head} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every scored account once scoring has caught up, for choosing link owners.
pub(super) async fn scoring_snapshot_accounts(
    ingest: &mut IngestServiceClient<Channel>,
    scoring: &mut ScoringServiceClient<Channel>,
) -> anyhow::Result<Vec<ipb::AccountRef>> {
    wait_scored(ingest, scoring, Duration::from_secs(300)).await?;
    let mut out: Vec<ipb::AccountRef> = all_scores(scoring).await?.into_iter().filter_map(|a| a.account).collect();
    out.sort_by(|a, b| (&a.network, &a.id).cmp(&(&b.network, &b.id)));
    Ok(out)
}

/// Attribution window of the simulated creators' links (a week).
pub const SIMULATED_WINDOW_SECS: i64 = 7 * 86_400;

/// Registers simulated creators' tracking links (no campaign) with ingestion.
pub async fn register_simulated_links(
    ingest: &mut IngestServiceClient<Channel>,
    links: &[dataset::SimulatedLink],
) -> anyhow::Result<ipb::RegisterLinksResponse> {
    let links = links
        .iter()
        .map(|l| ipb::Link {
            link: l.link.clone(),
            owner: Some(l.owner.clone()),
            campaign_id: String::new(),
            attribution_window_secs: SIMULATED_WINDOW_SECS.unsigned_abs(),
            landing_url: String::new(),
        })
        .collect();
    Ok(ingest.register_links(ipb::RegisterLinksRequest { links }).await?.into_inner())
}

/// Every scored account's scores in the current run, paged through `QueryAccounts`.
pub async fn all_scores(scoring: &mut ScoringServiceClient<Channel>) -> anyhow::Result<Vec<spb::AccountScores>> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let r = scoring
            .query_accounts(spb::QueryAccountsRequest {
                order_by: spb::Dimension::Activity as i32,
                page_size: 1000,
                page_token: token.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        out.extend(r.accounts);
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    Ok(out)
}
