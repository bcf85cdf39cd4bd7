//! The report consumer: keeps every offered campaign's report up to date from
//! the ledger, so `GetCampaignReport` reads a stored summary instead of the
//! whole ledger.
//!
//! The consumer holds one `ReportBuilder` per offered campaign in memory and
//! tails ingestion's ledger from its committed position (all kinds, so the
//! position follows the head even when no event concerns a report). Every
//! event is fed to every builder, which keeps what its report reads (social
//! activity up to the campaign's offers, outcomes after). Once caught up (after
//! a short debounce) or every `BATCH_EVENTS` events, it commits the changed
//! campaigns' states and summaries together with the new position, in one
//! transaction that only succeeds from the position it started at
//! (`lift_store::reports::commit`): a restart resumes from the committed
//! position with the committed states, so no event is counted twice or
//! skipped, and a second consumer on the same database (another replica)
//! cannot commit over it — the loser reloads.
//!
//! A campaign that gets offers is adopted by reading the ledger from the start
//! up to the committed position once, then follows the tail with the others.
//! A standing program keeps granting: when its grants outnumber the members
//! its report knows, the consumer commits what it read, reads the ledger from
//! the start up to that position once more for the new members only
//! (`ReportBuilder::addition`, each member from its own grant's start) and
//! commits the grown report at the same position; an addition the builder
//! cannot merge exactly (see `lift_domain::campaign::Addition`) rebuilds that
//! report from the start instead.
//! With no offered campaign at all, the position follows the ledger head
//! without reading events (but it asks for erasure markers in between). Its lag
//! behind the head is the gauge `lift_report_consumer_lag_events`.
//!
//! An erasure marker (or a retention run's) stops the consumer before it: it
//! acts on it (`crate::erasure`: matching's rows naming the erased account go,
//! every aggregate is deleted), commits its position at the marker, and starts
//! a new session, which rebuilds every offered campaign's report from the
//! redacted ledger.

use lift_proto::convert::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use lift_domain::LedgerEntry;
use lift_domain::campaign::ReportBuilder;
use lift_proto::ingest::v1 as ipb;
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_runtime::Shutdown;
use lift_runtime::client::Channel;
use lift_store::DatabaseConnection;
use lift_store::reports::{self as store, Aggregate};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::Error;
use crate::erasure::{self, Hooks};

/// Format of the stored builder state (serde JSON of `ReportBuilder`); a state
/// in any other format is dropped and the campaign adopted again.
pub(crate) const FORMAT_VERSION: u32 = 2;
/// Events applied before a commit even while still catching up.
const BATCH_EVENTS: u64 = 200_000;
/// How long the consumer waits for more events once caught up before
/// committing — at least as long as the last commit took, so that rewriting
/// large states never takes more than about half of the consumer's time.
const DEBOUNCE: Duration = Duration::from_millis(10);
/// How often an idle consumer looks for newly offered campaigns and, with none
/// to aggregate, for a new ledger head.
const POLL: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the service and its consumer share.
#[derive(Debug)]
pub(crate) struct ReportFeed {
    /// Asks the consumer to look for newly offered campaigns now.
    wake: Notify,
    /// The position this process's consumer last committed.
    committed: watch::Sender<u64>,
    /// Stops the consumer (when the service is dropped).
    stop: Shutdown,
}

impl ReportFeed {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self { wake: Notify::new(), committed: watch::channel(0).0, stop: Shutdown::new() })
    }

    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn committed(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }

    pub(crate) fn stop(&self) {
        self.stop.trigger();
    }
}

/// Starts the consumer on the current tokio runtime (none outside one: then
/// reports wait and answer UNAVAILABLE, which the log explains).
pub(crate) fn spawn(db: DatabaseConnection, ingest: IngestServiceClient<Channel>, hooks: Hooks, feed: Arc<ReportFeed>) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(Consumer { db, ingest, hooks, feed }.run());
        }
        Err(_) => tracing::error!("no tokio runtime: the report consumer is not running"),
    }
}

struct Consumer {
    db: DatabaseConnection,
    ingest: IngestServiceClient<Channel>,
    /// What acting on an erasure marker needs (`crate::erasure`).
    hooks: Hooks,
    feed: Arc<ReportFeed>,
}

/// The consumer's state between commits.
struct Live {
    /// Committed position.
    position: u64,
    builders: BTreeMap<String, ReportBuilder>,
}

/// Why a session ended without an error.
enum End {
    Stopped,
    /// Another consumer committed first, or a campaign must be adopted: start over from the database.
    Reload,
}

impl Consumer {
    async fn run(self) {
        let mut backoff = Duration::from_millis(50);
        loop {
            if self.feed.stop.is_triggered() {
                return;
            }
            match self.session().await {
                Ok(End::Stopped) => return,
                Ok(End::Reload) => backoff = Duration::from_millis(50),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "report consumer failed; restarting from its committed position");
                    tokio::select! {
                        () = self.feed.stop.wait() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Loads the committed state, adopts new campaigns, and follows the ledger
    /// until stopped or until it must reload.
    async fn session(&self) -> Result<End, Error> {
        let mut live = self.load().await?;
        if let Some(end) = self.adopt(&mut live).await? {
            return Ok(end);
        }
        let grown = self.grown(&live).await?;
        if let Some(end) = self.grow(&mut live, grown).await? {
            return Ok(end);
        }
        if live.builders.is_empty() { self.follow_head(live).await } else { self.tail(live).await }
    }

    async fn load(&self) -> Result<Live, Error> {
        let position = store::position(&self.db).await?;
        let mut builders = BTreeMap::new();
        for a in store::load_all(&self.db).await? {
            let decoded = (a.format_version == FORMAT_VERSION)
                .then(|| serde_json::from_str::<ReportBuilder>(&a.state))
                .transpose();
            match decoded {
                Ok(Some(b)) => {
                    builders.insert(a.campaign_id, b);
                }
                Ok(None) | Err(_) => {
                    tracing::warn!(
                        campaign = a.campaign_id,
                        format = a.format_version,
                        "stored report state is unreadable; rebuilding it from the ledger"
                    );
                    store::remove(&self.db, &a.campaign_id).await?;
                }
            }
        }
        self.feed.committed.send_replace(position);
        Ok(Live { position, builders })
    }

    /// Builds each newly offered campaign's report up to the committed position
    /// and commits it; `Some` when the session must end.
    async fn adopt(&self, live: &mut Live) -> Result<Option<End>, Error> {
        for p in store::pending_campaigns(&self.db).await? {
            let Some(mut b) = crate::service::report_builder(&self.db, &p.brand_id, &p.campaign_id).await? else {
                continue;
            };
            let started = std::time::Instant::now();
            let read = crate::service::feed_ledger(&self.ingest, live.position, &mut b).await?;
            let agg = aggregate(&p.campaign_id, &b)?;
            if !store::commit(&self.db, live.position, live.position, &[agg], lift_domain::time::now()).await? {
                return Ok(Some(End::Reload));
            }
            tracing::info!(
                campaign = p.campaign_id,
                events = read,
                up_to = live.position,
                millis = started.elapsed().as_millis() as u64,
                "report aggregate built"
            );
            live.builders.insert(p.campaign_id, b);
            self.feed.committed.send_replace(live.position);
        }
        Ok(None)
    }

    /// Standing programs whose grants outnumber the members their report
    /// knows (campaign and brand).
    async fn grown(&self, live: &Live) -> Result<Vec<(String, String)>, Error> {
        if live.builders.is_empty() {
            return Ok(Vec::new());
        }
        Ok(lift_store::standing::grant_counts(&self.db)
            .await?
            .into_iter()
            .filter(|(id, _, n)| live.builders.get(id).is_some_and(|b| (b.members() as u64) < *n))
            .map(|(id, brand, _)| (id, brand))
            .collect())
    }

    /// Adds the `grown` programs' new members to their reports, which cover
    /// the ledger up to the committed position: one read of the ledger up to
    /// it for all of them, then one commit at the same position (a report that
    /// cannot take its addition exactly is built again from the start).
    /// `Some` when the session must end.
    async fn grow(&self, live: &mut Live, grown: Vec<(String, String)>) -> Result<Option<End>, Error> {
        if grown.is_empty() {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let mut additions = Vec::new();
        for (id, brand) in grown {
            let (Some(b), Some(members)) =
                (live.builders.get(&id), crate::service::report_members(&self.db, &brand, &id).await?)
            else {
                continue;
            };
            let add = b.addition(&members, live.position);
            if !add.is_empty() {
                additions.push((id, brand, add));
            }
        }
        if additions.is_empty() {
            return Ok(None);
        }
        let read = crate::service::read_ledger_to(&self.ingest, live.position, |e| {
            for (_, _, add) in &mut additions {
                add.feed(e);
            }
        })
        .await?;
        let mut aggs = Vec::new();
        for (id, brand, add) in additions {
            let Some(b) = live.builders.get_mut(&id) else { continue };
            let added = add.members().len();
            match b.apply(add) {
                Ok(()) => tracing::info!(
                    campaign = id,
                    added,
                    events = read,
                    up_to = live.position,
                    millis = started.elapsed().as_millis() as u64,
                    "report aggregate: new standing members added"
                ),
                Err(why) => {
                    tracing::warn!(
                        campaign = id,
                        reason = why,
                        "report aggregate rebuilt from the start for its new members"
                    );
                    let Some(mut fresh) = crate::service::report_builder(&self.db, &brand, &id).await? else {
                        continue;
                    };
                    crate::service::feed_ledger(&self.ingest, live.position, &mut fresh).await?;
                    *b = fresh;
                }
            }
            aggs.push(aggregate(&id, b)?);
        }
        if !store::commit(&self.db, live.position, live.position, &aggs, lift_domain::time::now()).await? {
            return Ok(Some(End::Reload));
        }
        self.feed.committed.send_replace(live.position);
        Ok(None)
    }

    /// No campaign to aggregate: move the position with the head, reading nothing.
    async fn follow_head(&self, mut live: Live) -> Result<End, Error> {
        loop {
            let head = self.head().await?;
            if head > live.position
                && let Some((offset, hash)) = self.first_marker(live.position, head).await?
            {
                return self.erased(&mut live, offset, &hash).await;
            }
            if head > live.position {
                if !store::commit(&self.db, live.position, head, &[], lift_domain::time::now()).await? {
                    return Ok(End::Reload);
                }
                live.position = head;
                self.feed.committed.send_replace(head);
            }
            lag(head, live.position);
            tokio::select! {
                () = self.feed.stop.wait() => return Ok(End::Stopped),
                () = self.feed.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
            if !store::pending_campaigns(&self.db).await?.is_empty() {
                return Ok(End::Reload);
            }
        }
    }

    /// The first erasure marker in `(after, head]`, if any (its offset and hash).
    async fn first_marker(&self, after: u64, head: u64) -> Result<Option<(u64, String)>, Error> {
        let req = ipb::SubscribeRequest {
            after_offset: after,
            kinds: vec![ipb::EventKind::Erasure as i32],
            stop_at_head: true,
        };
        let mut stream = self.ingest.clone().subscribe(req).await.map_err(Error::ingest)?.into_inner();
        while let Some(msg) = stream.message().await.map_err(Error::ingest)? {
            if let Some(found) = msg.events.iter().filter(|e| e.offset <= head).find_map(marker) {
                return Ok(Some(found));
            }
            if msg.caught_up {
                break;
            }
        }
        Ok(None)
    }

    /// Acts on the erasure marker at `offset` (`crate::erasure`), then commits the
    /// position at the marker; the next session rebuilds the reports.
    async fn erased(&self, live: &mut Live, offset: u64, hash: &str) -> Result<End, Error> {
        if !erasure::wait_for_scoring(&self.hooks, offset, &self.feed.stop).await {
            return Ok(End::Stopped);
        }
        let purged = erasure::purge(&self.db, hash).await?;
        erasure::forget_cached(&self.hooks);
        metrics::counter!("lift_matching_erasures_total").increment(1);
        tracing::info!(
            subject = hash,
            marker = offset,
            account_known = purged.account_known,
            offers = purged.rows.offers,
            eligibility = purged.rows.eligibility,
            rate_cards = purged.rows.rate_cards,
            portfolios = purged.portfolios,
            report_aggregates = purged.aggregates,
            "erasure: purged matching's rows; rebuilding reports from the redacted ledger"
        );
        if store::commit(&self.db, live.position, offset, &[], lift_domain::time::now()).await? {
            live.position = offset;
            self.feed.committed.send_replace(offset);
        }
        Ok(End::Reload)
    }

    async fn head(&self) -> Result<u64, Error> {
        let info = self.ingest.clone().get_ledger_info(ipb::GetLedgerInfoRequest {}).await.map_err(Error::ingest)?;
        Ok(info.into_inner().head_offset)
    }

    /// Tails the ledger into the builders, committing as described above.
    async fn tail(&self, mut live: Live) -> Result<End, Error> {
        let req = ipb::SubscribeRequest { after_offset: live.position, kinds: Vec::new(), stop_at_head: false };
        let mut stream = self.ingest.clone().subscribe(req).await.map_err(Error::ingest)?.into_inner();
        let mut read = live.position;
        let mut dirty = BTreeSet::new();
        let mut since_commit = 0u64;
        let mut deadline: Option<Instant> = None;
        let mut pause = DEBOUNCE;
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.feed.stop.wait() => return Ok(End::Stopped),
                () = sleep => {
                    deadline = None;
                    let started = Instant::now();
                    if !self.commit(&mut live, read, &mut dirty).await? {
                        return Ok(End::Reload);
                    }
                    pause = started.elapsed().max(DEBOUNCE);
                    since_commit = 0;
                }
                () = self.feed.wake.notified() => {
                    if let Some(end) = self.look_around(&mut live, read, &mut dirty).await? {
                        return Ok(end);
                    }
                }
                _ = poll.tick() => {
                    if let Some(end) = self.look_around(&mut live, read, &mut dirty).await? {
                        return Ok(end);
                    }
                }
                msg = stream.message() => {
                    let Some(msg) = msg.map_err(Error::ingest)? else {
                        // Ingestion closed the stream: commit what was read and resubscribe.
                        return self.commit(&mut live, read, &mut dirty).await.map(|_| End::Reload);
                    };
                    for e in &msg.events {
                        if e.offset > live.position
                            && let Some((offset, hash)) = marker(e)
                        {
                            return self.erased(&mut live, offset, &hash).await;
                        }
                        read = read.max(e.offset);
                        since_commit += 1;
                        let Ok(entry) = LedgerEntry::from_proto(e) else { continue };
                        for (id, b) in &mut live.builders {
                            let before = b.head_offset();
                            b.feed(&entry);
                            if b.head_offset() != before {
                                dirty.insert(id.clone());
                            }
                        }
                    }
                    if msg.caught_up {
                        read = read.max(msg.head_offset);
                    }
                    lag(msg.head_offset, read);
                    if since_commit >= BATCH_EVENTS {
                        deadline = None;
                        if !self.commit(&mut live, read, &mut dirty).await? {
                            return Ok(End::Reload);
                        }
                        since_commit = 0;
                    } else if msg.caught_up && read > live.position && deadline.is_none() {
                        deadline = Some(Instant::now() + pause);
                    }
                }
            }
        }
    }

    /// Between events: a newly offered campaign ends the session (after
    /// committing what was read, so the next one adopts it); standing
    /// programs' new members are added in place after committing `read`.
    async fn look_around(
        &self,
        live: &mut Live,
        read: u64,
        dirty: &mut BTreeSet<String>,
    ) -> Result<Option<End>, Error> {
        if !store::pending_campaigns(&self.db).await?.is_empty() {
            return self.commit(live, read, dirty).await.map(|_| Some(End::Reload));
        }
        let grown = self.grown(live).await?;
        if grown.is_empty() {
            return Ok(None);
        }
        if !self.commit(live, read, dirty).await? {
            return Ok(Some(End::Reload));
        }
        self.grow(live, grown).await
    }

    /// Commits the changed campaigns and the position `read`; false when
    /// another consumer committed first (nothing was written).
    async fn commit(&self, live: &mut Live, read: u64, dirty: &mut BTreeSet<String>) -> Result<bool, Error> {
        if read == live.position && dirty.is_empty() {
            return Ok(true);
        }
        let aggs = dirty
            .iter()
            .filter_map(|id| live.builders.get(id).map(|b| aggregate(id, b)))
            .collect::<Result<Vec<_>, _>>()?;
        if !store::commit(&self.db, live.position, read, &aggs, lift_domain::time::now()).await? {
            tracing::info!(position = live.position, "another report consumer committed first; reloading");
            return Ok(false);
        }
        dirty.clear();
        live.position = read;
        self.feed.committed.send_replace(read);
        Ok(true)
    }
}

/// An erasure marker's offset and subject hash.
fn marker(e: &ipb::LedgerEvent) -> Option<(u64, String)> {
    match e.event.as_ref().and_then(|ev| ev.kind.as_ref()) {
        Some(ipb::event::Kind::Erasure(x)) => Some((e.offset, x.subject_hash.clone())),
        _ => None,
    }
}

fn aggregate(id: &str, b: &ReportBuilder) -> Result<Aggregate, Error> {
    let encode = |r: serde_json::Result<String>| r.map_err(|e| Error::Internal(format!("report state of {id}: {e}")));
    Ok(Aggregate {
        campaign_id: id.to_owned(),
        format_version: FORMAT_VERSION,
        state: encode(serde_json::to_string(b))?,
        summary: encode(serde_json::to_string(&b.summary()))?,
    })
}

/// `lift_report_consumer_lag_events`: events between the ledger head and what
/// the report consumer has read.
fn lag(head: u64, read: u64) {
    metrics::gauge!("lift_report_consumer_lag_events").set(head.saturating_sub(read) as f64);
}
