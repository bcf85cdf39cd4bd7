//! The ingestion service's operations, independent of gRPC.

use lift_proto::convert::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lift_domain::{AccountId, Event, EventKind, FieldViolation};
use lift_proto::ingest::v1 as pb;
use lift_store::ledger::{Appender, Outcome};
use lift_store::{DatabaseConnection, links};
use tokio::sync::{Mutex, mpsc, watch};

use crate::ledger::sql;
use crate::{Error, IngestConfig, Ledger, attribution};

/// The ingestion service: cheap to clone, every clone shares the database, the
/// in-process append queue and the head notifications.
#[derive(Debug, Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The link registry and click index, and the ledger unless `ledger` says otherwise.
    db: DatabaseConnection,
    ledger: Ledger,
    cfg: IngestConfig,
    /// The database serialises appenders anyway (see `lift_store::ledger`); queueing
    /// this process's appends here first keeps them from holding pool connections
    /// while they wait, and waits fairly instead of in SQLite's busy-retry loop.
    append: Mutex<()>,
    /// The head after this process's latest commit: wakes tailing subscribers.
    head: watch::Sender<u64>,
    /// Some event was erased (it stays true): appends then check for replays of
    /// erased events. Until then each append asks the small audit table.
    erasures_seen: AtomicBool,
}

/// What happened to one batch: one result per request event, in request order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchOutcome {
    pub accepted: u32,
    pub duplicates: u32,
    pub rejected: u32,
    pub results: Vec<pb::EventResult>,
}

impl BatchOutcome {
    /// Every violation of the batch, with `events[i]` paths.
    pub fn violations(&self) -> Vec<FieldViolation> {
        self.results
            .iter()
            .flat_map(|r| r.violations.iter().map(|v| FieldViolation::new(v.field.clone(), v.description.clone())))
            .collect()
    }

    pub fn to_proto(&self) -> pb::IngestBatchResponse {
        pb::IngestBatchResponse {
            accepted: self.accepted,
            duplicates: self.duplicates,
            rejected: self.rejected,
            results: self.results.clone(),
        }
    }
}

impl Ingest {
    /// The service with its ledger in `db` (SQLite or PostgreSQL).
    pub fn new(db: DatabaseConnection, cfg: IngestConfig) -> Self {
        Self::with_ledger(db, Ledger::Sql, cfg)
    }

    /// The service with its ledger in `ledger`; links and the click index stay in `db`.
    pub fn with_ledger(db: DatabaseConnection, ledger: Ledger, cfg: IngestConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                ledger,
                cfg,
                append: Mutex::new(()),
                head: watch::channel(0).0,
                erasures_seen: AtomicBool::new(false),
            }),
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    pub fn config(&self) -> &IngestConfig {
        &self.inner.cfg
    }

    /// Validates, deduplicates, attributes and durably appends one batch. Invalid
    /// events are rejected individually (paths `events[i].field`); the valid ones
    /// are stored in the same call.
    pub async fn ingest(&self, events: &[pb::Event]) -> Result<BatchOutcome, Error> {
        let cfg = &self.inner.cfg;
        if events.len() > cfg.max_batch {
            return Err(Error::BatchTooLarge { len: events.len(), max: cfg.max_batch });
        }
        let policy = cfg.policy(lift_domain::time::now());
        let mut results: Vec<pb::EventResult> = Vec::with_capacity(events.len());
        let mut valid: Vec<Event> = Vec::with_capacity(events.len());
        let mut valid_index: Vec<usize> = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            let parsed = if matches!(e.kind, Some(pb::event::Kind::Erasure(_))) {
                // Only the privacy service appends erasure markers (see `privacy`).
                Err(vec![FieldViolation::new("erasure", "erasure markers are appended by the privacy service only")])
            } else {
                Event::from_proto(e, &policy)
            };
            match parsed {
                Ok(ev) => {
                    valid.push(ev);
                    valid_index.push(i);
                    results.push(pb::EventResult { index, ..Default::default() });
                }
                Err(vs) => results.push(pb::EventResult {
                    index,
                    outcome: pb::EventOutcome::Rejected as i32,
                    offset: 0,
                    violations: vs
                        .into_iter()
                        .map(|v| {
                            let v = v.prefixed(&format!("events[{i}]"));
                            pb::FieldViolation { field: v.field, description: v.description }
                        })
                        .collect(),
                }),
            }
        }
        let mut out = BatchOutcome {
            rejected: u32::try_from(events.len() - valid.len()).unwrap_or(u32::MAX),
            ..Default::default()
        };
        if !valid.is_empty() {
            let plan = self.append(&valid).await?;
            for (o, i) in plan.into_iter().zip(valid_index) {
                let r = &mut results[i];
                r.offset = o.offset();
                if o.is_accepted() {
                    r.outcome = pb::EventOutcome::Accepted as i32;
                    out.accepted += 1;
                } else {
                    r.outcome = pb::EventOutcome::Duplicate as i32;
                    out.duplicates += 1;
                }
            }
        }
        out.results = results;
        count_outcomes(&out);
        Ok(out)
    }

    /// Appends valid events in one transaction with their attribution, then wakes
    /// subscribers. Returns when the events are committed.
    pub async fn append(&self, events: &[Event]) -> Result<Vec<Outcome>, Error> {
        let _queued = self.inner.append.lock().await;
        let (plan, head) = match &self.inner.ledger {
            Ledger::Sql => self.append_sql(events).await?,
            Ledger::Nats(n) => n.append(&self.inner.db, events).await?,
        };
        self.publish(head);
        Ok(plan)
    }

    /// The SQL ledger: a replay of an erased event is answered as a duplicate of
    /// its tombstone and not stored again (`lift_store::privacy`); the rest is
    /// appended in one transaction.
    async fn append_sql(&self, events: &[Event]) -> Result<(Vec<Outcome>, u64), Error> {
        let appender = Appender::begin(&self.inner.db).await?;
        let erased = self.erased_replays(&appender, events).await?;
        if erased.iter().all(Option::is_none) {
            return self.append_in(appender, events).await;
        }
        let fresh: Vec<Event> =
            events.iter().zip(&erased).filter(|(_, o)| o.is_none()).map(|(e, _)| e.clone()).collect();
        let (plan, head) = self.append_in(appender, &fresh).await?;
        let mut plan = plan.into_iter();
        let mut out = Vec::with_capacity(events.len());
        for o in erased {
            match o {
                Some(offset) => out.push(Outcome::Duplicate(offset)),
                None => out.extend(plan.next()),
            }
        }
        Ok((out, head))
    }

    /// For each event, the offset of its tombstone when it was erased before.
    async fn erased_replays(&self, appender: &Appender, events: &[Event]) -> Result<Vec<Option<u64>>, Error> {
        if !self.inner.erasures_seen.load(Ordering::Relaxed) {
            if !lift_store::privacy::any_erased(appender.txn()).await? {
                return Ok(vec![None; events.len()]);
            }
            self.inner.erasures_seen.store(true, Ordering::Relaxed);
        }
        let keys: Vec<(&str, &str)> = events.iter().map(|e| (e.source.as_str(), e.event_id.as_str())).collect();
        Ok(lift_store::privacy::erased_duplicates(appender.txn(), &keys).await?)
    }

    /// The append queue: held by every writer of the ledger in this process.
    pub(crate) fn append_queue(&self) -> &Mutex<()> {
        &self.inner.append
    }

    /// Records that an erasure committed with head `head`: wakes subscribers.
    pub(crate) fn erased(&self, head: u64) {
        self.inner.erasures_seen.store(true, Ordering::Relaxed);
        self.publish(head);
    }

    fn publish(&self, head: u64) {
        metrics::gauge!("lift_ledger_head_offset").set(head as f64);
        self.inner.head.send_if_modified(|h| {
            let moved = head > *h;
            *h = (*h).max(head);
            moved
        });
    }

    /// One SQL transaction: plan, attribute, write, index clicks, commit.
    async fn append_in(&self, mut appender: Appender, events: &[Event]) -> Result<(Vec<Outcome>, u64), Error> {
        let rows = sql::encode_all(events);
        // Try the common case (nothing stored yet) without the dedupe lookup first.
        let mut plan = appender.plan_new(&rows);
        let (attributions, mut clicks) = attribution::attribute(appender.txn(), events, &plan).await?;
        if appender.write_new(&rows, &plan, &sql::encode_attributions(&attributions)).await?.is_none() {
            plan = appender.plan(&rows).await?;
            let (attributions, c) = attribution::attribute(appender.txn(), events, &plan).await?;
            appender.write(&rows, &plan, &sql::encode_attributions(&attributions)).await?;
            clicks = c;
        }
        links::record_clicks(appender.txn(), &clicks).await?;
        let head = appender.commit().await?;
        Ok((plan, head))
    }

    /// Registers links; a window of 0 takes the configured default.
    pub async fn register_links(&self, req: &[pb::Link]) -> Result<links::Registered, Error> {
        let cfg = &self.inner.cfg;
        if req.len() > cfg.max_links {
            return Err(Error::Invalid(vec![FieldViolation::new(
                "links",
                format!("{} links exceed the limit of {}", req.len(), cfg.max_links),
            )]));
        }
        let mut violations = Vec::new();
        let mut out = Vec::with_capacity(req.len());
        for (i, l) in req.iter().enumerate() {
            let at = |f: &str| format!("links[{i}].{f}");
            let before = violations.len();
            check_token(&l.link, &at("link"), lift_domain::event::MAX_LINK_LEN, &mut violations);
            if !l.campaign_id.is_empty() {
                check_token(&l.campaign_id, &at("campaign_id"), 128, &mut violations);
            }
            if l.attribution_window_secs > 366 * 86_400 {
                violations.push(FieldViolation::new(
                    at("attribution_window_secs"),
                    format!("is {} s; the limit is 366 days", l.attribution_window_secs),
                ));
            }
            if !l.landing_url.is_empty() {
                check_landing_url(&l.landing_url, &at("landing_url"), &mut violations);
            }
            let owner = AccountId::from_proto(l.owner.as_ref(), &at("owner"), &mut violations);
            if let (Some(owner), true) = (owner, violations.len() == before) {
                out.push(links::Link {
                    link: l.link.clone(),
                    owner,
                    campaign_id: l.campaign_id.clone(),
                    attribution_window_secs: match l.attribution_window_secs {
                        0 => cfg.default_attribution_window.as_secs(),
                        s => s,
                    },
                    landing_url: l.landing_url.clone(),
                });
            }
        }
        if !violations.is_empty() {
            return Err(Error::Invalid(violations));
        }
        Ok(links::register(&self.inner.db, &out, lift_domain::time::now()).await?)
    }

    /// The registered links among `req` (at most [`MAX_RESOLVE`]), in request order.
    pub async fn resolve_links(&self, req: &[String]) -> Result<Vec<pb::Link>, Error> {
        if req.len() > MAX_RESOLVE {
            return Err(Error::Invalid(vec![FieldViolation::new(
                "links",
                format!("has {} links; the limit is {MAX_RESOLVE}", req.len()),
            )]));
        }
        let found = links::get_many(&self.inner.db, req.iter().map(String::as_str)).await?;
        Ok(req
            .iter()
            .filter_map(|l| found.get(l))
            .map(|l| pb::Link {
                link: l.link.clone(),
                owner: Some(l.owner.to_proto()),
                campaign_id: l.campaign_id.clone(),
                attribution_window_secs: l.attribution_window_secs,
                landing_url: l.landing_url.clone(),
            })
            .collect())
    }

    pub async fn ledger_info(&self) -> Result<pb::GetLedgerInfoResponse, Error> {
        let head = self.inner.ledger.head(&self.inner.db).await?;
        metrics::gauge!("lift_ledger_head_offset").set(head as f64);
        // Offsets are dense with either backend, so the head is the event count.
        Ok(pb::GetLedgerInfoResponse { head_offset: head, events: head, links: links::count(&self.inner.db).await? })
    }

    /// Streams the ledger after `after` (only `kinds`, all when empty): pages while
    /// catching up, then live events as they commit. Messages go through a bounded
    /// channel, so a slow client slows its reader and nothing else. The stream ends
    /// when the receiver is dropped, after catching up if `stop_at_head`, or with the
    /// first error.
    pub fn tail(
        &self,
        after: u64,
        kinds: Vec<EventKind>,
        stop_at_head: bool,
    ) -> mpsc::Receiver<Result<pb::SubscribeResponse, Error>> {
        let (tx, rx) = mpsc::channel(self.inner.cfg.subscribe_buffer.max(1));
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.feed(after, &kinds, stop_at_head, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        rx
    }

    async fn feed(
        &self,
        mut last: u64,
        kinds: &[EventKind],
        stop_at_head: bool,
        tx: &mpsc::Sender<Result<pb::SubscribeResponse, Error>>,
    ) -> Result<(), Error> {
        let db = &self.inner.db;
        let page = self.inner.cfg.subscribe_page.max(1);
        let mut local_head = self.inner.head.subscribe();
        let mut told_caught_up = false;
        loop {
            // Mark before reading: a commit after this point wakes the next wait.
            local_head.mark_unchanged();
            let head = self.inner.ledger.head(db).await?;
            let events = self.inner.ledger.read_after_wire(db, last, kinds, page).await?;
            let full = events.len() == page as usize;
            if let Some(e) = events.last() {
                last = e.offset;
            }
            // A short page read after the head was taken covers everything up to it.
            let caught_up = !full || last >= head;
            if !events.is_empty() || (caught_up && !told_caught_up) {
                let msg = pb::SubscribeResponse { events, head_offset: head.max(last), caught_up };
                if tx.send(Ok(msg)).await.is_err() {
                    return Ok(());
                }
                told_caught_up |= caught_up;
            }
            if caught_up && stop_at_head {
                return Ok(());
            }
            if full {
                continue;
            }
            tokio::select! {
                changed = local_head.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
                () = tokio::time::sleep(self.inner.cfg.poll_interval) => {}
                () = tx.closed() => return Ok(()),
            }
        }
    }
}

pub(crate) use lift_domain::validation::check_token;

/// `lift_ingest_events_accepted_total` and `lift_ingest_events_rejected_total{reason,field}`
/// for one batch: `reason` is `invalid` (with the event's first invalid field, list
/// indices removed, so the label set is bounded by the schema) or `duplicate`.
fn count_outcomes(out: &BatchOutcome) {
    metrics::counter!("lift_ingest_events_accepted_total").increment(u64::from(out.accepted));
    if out.duplicates > 0 {
        metrics::counter!("lift_ingest_events_rejected_total", "reason" => "duplicate", "field" => "")
            .increment(u64::from(out.duplicates));
    }
    for r in out.results.iter().filter(|r| r.outcome == pb::EventOutcome::Rejected as i32) {
        let field = r.violations.first().map(|v| schema_field(&v.field)).unwrap_or_default();
        metrics::counter!("lift_ingest_events_rejected_total", "reason" => "invalid", "field" => field).increment(1);
    }
}

/// `events[3].post.topics[2]` → `post.topics`.
fn schema_field(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut depth = 0usize;
    for c in path.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.strip_prefix("events.").or_else(|| out.strip_prefix("events")).unwrap_or(&out).to_owned()
}
/// Most links one `ResolveLinks` call may ask about.
pub(crate) const MAX_RESOLVE: usize = 1_000;

fn check_landing_url(url: &str, field: &str, v: &mut Vec<FieldViolation>) {
    if let Some(problem) = lift_domain::campaign::landing_url_problem(url) {
        v.push(FieldViolation::new(field, problem));
    }
}
