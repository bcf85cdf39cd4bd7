//! Landing-page sessions from the beacon (`/lift.js` posting to `/b`).
//!
//! The script sends what it saw (session id, visitor id and tracking code from the redirect,
//! time on page, page views in the session, an explicit goal). A session becomes one
//! `PageSession` event: *engaged* (`bounced = false`) as soon as it shows a second page view,
//! an explicit goal or `engaged_dwell` on the page; *bounced* when it goes quiet for
//! `idle` without any of those. Open sessions live in memory and, when the collector runs with
//! a spool, in the [`journal`](crate::journal) beside it, so a restart keeps the undecided ones.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::journal::{self, Journal, Record};

use lift_proto::ingest::v1 as pb;
use serde::Deserialize;

/// One beacon, as the script sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct Beacon {
    /// Session id (random, made by the script per browser tab session).
    pub s: String,
    /// Visitor id from the redirect.
    pub v: String,
    /// Tracking code from the redirect.
    pub l: String,
    /// Milliseconds on the current page so far.
    #[serde(default)]
    pub d: u64,
    /// Page views in this session so far.
    #[serde(default)]
    pub p: u32,
    /// An explicit goal reached (`lift.goal("signup")`).
    #[serde(default)]
    pub g: Option<String>,
}

#[derive(Debug)]
struct Open {
    visitor_id: String,
    link: String,
    dwell_ms: u64,
    views: u32,
    goal: bool,
    last_seen: Instant,
    decided: bool,
}

impl Open {
    fn record(&self, id: &str, now: Instant) -> Record {
        Record {
            s: id.to_owned(),
            v: self.visitor_id.clone(),
            l: self.link.clone(),
            d: self.dwell_ms,
            p: self.views,
            g: self.goal,
            t: journal::unix_ms(self.last_seen, now),
            gone: false,
        }
    }
}

/// A decided session, ready to spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub session_id: String,
    pub visitor_id: String,
    pub link: String,
    pub dwell_ms: u64,
    pub bounced: bool,
}

impl Decided {
    pub fn to_event(&self, source: &str, occurred_at: lift_proto::Timestamp) -> pb::Event {
        pb::Event {
            event_id: format!("ses-{}", self.session_id),
            source: source.to_owned(),
            occurred_at: Some(occurred_at),
            kind: Some(pb::event::Kind::PageSession(pb::PageSession {
                visitor_id: self.visitor_id.clone(),
                link: self.link.clone(),
                dwell_ms: self.dwell_ms,
                bounced: self.bounced,
            })),
        }
    }
}

/// Open sessions.
#[derive(Debug)]
pub struct Sessions {
    engaged_dwell: Duration,
    idle: Duration,
    max_open: usize,
    table: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    open: HashMap<String, Open>,
    journal: Option<Journal>,
}

impl Table {
    /// Journals `id`'s state; a failing disk is logged and counted, the beacon still counts.
    fn journal(&mut self, id: &str, gone: bool, now: Instant) {
        let Some(j) = self.journal.as_mut() else { return };
        let r = match (gone, self.open.get(id)) {
            (false, Some(s)) => s.record(id, now),
            _ => {
                Record { s: id.to_owned(), v: String::new(), l: String::new(), d: 0, p: 0, g: false, t: 0, gone: true }
            }
        };
        if let Err(e) = j.append(&r) {
            tracing::error!(error = %e, "session journal: write failed; a restart would forget this session");
            metrics::counter!("lift_collect_session_journal_errors_total").increment(1);
        }
    }
}

/// Why a beacon was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Invalid(&'static str),
    TooManyOpen,
}

impl Sessions {
    /// Sessions kept in memory only.
    pub fn new(engaged_dwell: Duration, idle: Duration, max_open: usize) -> Self {
        Self { engaged_dwell, idle, max_open, table: Mutex::new(Table { open: HashMap::new(), journal: None }) }
    }

    /// Sessions journaled at `path`, starting with the undecided ones it holds. A loaded session
    /// keeps the time of its last beacon, so one whose visitor left during the restart is decided
    /// by the first sweep.
    pub fn open(path: &Path, engaged_dwell: Duration, idle: Duration, max_open: usize) -> io::Result<Self> {
        let (journal, records) = Journal::open(path)?;
        let now = Instant::now();
        let open = records
            .into_iter()
            .map(|r| {
                let s = Open {
                    visitor_id: r.v,
                    link: r.l,
                    dwell_ms: r.d,
                    views: r.p,
                    goal: r.g,
                    last_seen: journal::instant_of(r.t, now),
                    decided: false,
                };
                (r.s, s)
            })
            .collect();
        Ok(Self { engaged_dwell, idle, max_open, table: Mutex::new(Table { open, journal: Some(journal) }) })
    }

    /// Open sessions, decided or not.
    pub fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).open.len()
    }

    /// No open sessions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn engaged(&self, s: &Open) -> bool {
        s.views >= 2 || s.goal || Duration::from_millis(s.dwell_ms) >= self.engaged_dwell
    }

    /// Folds a beacon in; returns the session when this beacon decides it as engaged.
    /// `link` is the registry key of the beacon's tracking code.
    pub fn observe(&self, b: &Beacon, link: String, now: Instant) -> Result<Option<Decided>, Refused> {
        if !crate::is_token(&b.s, 8, 64) {
            return Err(Refused::Invalid("s: session id must be 8-64 letters, digits, - or _"));
        }
        if !crate::is_token(&b.v, 8, 64) {
            return Err(Refused::Invalid("v: visitor id must be 8-64 letters, digits, - or _"));
        }
        let dwell_ms = b.d.min(86_400_000);
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if !table.open.contains_key(&b.s) && table.open.len() >= self.max_open {
            return Err(Refused::TooManyOpen);
        }
        let s = table.open.entry(b.s.clone()).or_insert_with(|| Open {
            visitor_id: b.v.clone(),
            link,
            dwell_ms: 0,
            views: 0,
            goal: false,
            last_seen: now,
            decided: false,
        });
        s.last_seen = now;
        s.dwell_ms = s.dwell_ms.max(dwell_ms);
        s.views = s.views.max(b.p);
        s.goal |= b.g.as_deref().is_some_and(|g| !g.is_empty());
        if s.decided {
            return Ok(None);
        }
        let engaged = self.engaged(s);
        let decided = engaged.then(|| {
            s.decided = true;
            Decided {
                session_id: b.s.clone(),
                visitor_id: s.visitor_id.clone(),
                link: s.link.clone(),
                dwell_ms: s.dwell_ms,
                bounced: false,
            }
        });
        // Journaled up to and including the deciding beacon (see `journal`).
        table.journal(&b.s, false, now);
        Ok(decided)
    }

    /// Sessions quiet for `idle` are forgotten; each undecided one is handed to `emit` first —
    /// a bounce, or engaged when a session loaded from the journal had been decided engaged
    /// before a restart (its event id is the same, so ingestion keeps one). A session is
    /// journaled as gone only after `emit` took it, so a crash in between re-emits, never loses.
    pub fn sweep(&self, now: Instant, mut emit: impl FnMut(Decided)) {
        let idle = self.idle;
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let quiet: Vec<String> = table
            .open
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last_seen) >= idle)
            .map(|(id, _)| id.clone())
            .collect();
        for id in quiet {
            let Some(s) = table.open.remove(&id) else { continue };
            if !s.decided {
                let bounced = !self.engaged(&s);
                emit(Decided {
                    session_id: id.clone(),
                    visitor_id: s.visitor_id,
                    link: s.link,
                    dwell_ms: s.dwell_ms,
                    bounced,
                });
            }
            table.journal(&id, true, now);
        }
        let Table { open, journal } = &mut *table;
        if let Some(j) = journal.as_mut() {
            // Decided sessions stay in the file too: a restart re-decides them the same way.
            let live = || open.iter().map(|(id, s)| s.record(id, now)).collect();
            if let Err(e) = j.maybe_compact(live) {
                tracing::error!(error = %e, "session journal: rewriting failed; it keeps growing until a rewrite succeeds");
                metrics::counter!("lift_collect_session_journal_errors_total").increment(1);
            }
        }
    }
}

/// The beacon script; `__ENGAGED_MS__` is replaced with the engaged-dwell threshold.
pub const SCRIPT: &str = include_str!("beacon.js");

#[cfg(test)]
mod tests {
    use super::*;

    fn beacon(s: &str, d: u64, p: u32) -> Beacon {
        Beacon { s: s.into(), v: "visitor-1".into(), l: "abc".into(), d, p, g: None }
    }

    fn swept(s: &Sessions, now: Instant) -> Vec<Decided> {
        let mut out = Vec::new();
        s.sweep(now, |d| out.push(d));
        out
    }

    /// Pins that a restart keeps undecided sessions: one reopened from the journal is swept as a
    /// bounce with its dwell; one decided engaged just before the restart is decided engaged
    /// again (same session id, so the same event id); swept sessions are not reloaded.
    #[test]
    fn restart_keeps_undecided_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.sessions");
        let (engaged, idle) = (Duration::from_secs(10), Duration::from_secs(30));
        let t = Instant::now();
        {
            let s = Sessions::open(&path, engaged, idle, 100).unwrap();
            assert_eq!(s.observe(&beacon("session-a", 1_200, 1), "lift.to/abc".into(), t), Ok(None));
            assert!(s.observe(&beacon("session-b", 300, 2), "lift.to/abc".into(), t).ok().flatten().is_some());
        }
        let s = Sessions::open(&path, engaged, idle, 100).unwrap();
        assert_eq!(s.len(), 2);
        assert!(swept(&s, Instant::now()).is_empty(), "loaded sessions keep their last beacon's time");
        let mut got = swept(&s, Instant::now() + idle + Duration::from_secs(1));
        got.sort_by(|x, y| x.session_id.cmp(&y.session_id));
        let got: Vec<_> = got.iter().map(|d| (d.session_id.as_str(), d.bounced, d.dwell_ms)).collect();
        assert_eq!(got, vec![("session-a", true, 1_200), ("session-b", false, 300)]);
        drop(s);
        assert!(Sessions::open(&path, engaged, idle, 100).unwrap().is_empty(), "swept sessions are not reloaded");
    }

    /// Pins the rule: a second page view decides "engaged" once; a single quiet view is a bounce
    /// after the idle time, with the longest dwell seen.
    #[test]
    fn engaged_and_bounced() {
        let s = Sessions::new(Duration::from_secs(10), Duration::from_secs(30), 100);
        let t = Instant::now();
        assert_eq!(s.observe(&beacon("session-a", 500, 1), "lift.to/abc".into(), t), Ok(None));
        let d = s.observe(&beacon("session-a", 200, 2), "lift.to/abc".into(), t).ok().flatten();
        assert_eq!(d.map(|d| (d.bounced, d.dwell_ms)), Some((false, 500)));
        assert_eq!(s.observe(&beacon("session-a", 900, 3), "lift.to/abc".into(), t), Ok(None));
        assert_eq!(s.observe(&beacon("session-b", 1_500, 1), "lift.to/abc".into(), t), Ok(None));
        assert!(swept(&s, t + Duration::from_secs(5)).is_empty());
        let swept = swept(&s, t + Duration::from_secs(31));
        assert_eq!(swept.len(), 1, "only the undecided session is emitted");
        assert_eq!((swept[0].session_id.as_str(), swept[0].bounced, swept[0].dwell_ms), ("session-b", true, 1_500));
    }

    /// Pins that time on page alone (past the threshold) and explicit goals count as engaged.
    #[test]
    fn dwell_and_goal_engage() {
        let s = Sessions::new(Duration::from_secs(10), Duration::from_secs(30), 100);
        let t = Instant::now();
        assert!(s.observe(&beacon("session-c", 10_000, 1), "l".into(), t).ok().flatten().is_some());
        let mut g = beacon("session-d", 10, 1);
        g.g = Some("signup".into());
        assert!(s.observe(&g, "l".into(), t).ok().flatten().is_some());
        assert!(matches!(s.observe(&beacon("bad id", 1, 1), "l".into(), t), Err(Refused::Invalid(_))));
    }
}
