//! Landing-page sessions from the beacon (`/lift.js` posting to `/b`).
//!
//! The script sends what it saw (session id, visitor id and tracking code from the redirect,
//! time on page, page views in the session, an explicit goal). A session becomes one
//! `PageSession` event: *engaged* (`bounced = false`) as soon as it shows a second page view,
//! an explicit goal or `engaged_dwell` on the page; *bounced* when it goes quiet for
//! `idle` without any of those. Open sessions live in memory: a collector restart forgets
//! the not-yet-decided ones (engaged ones are already spooled).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    open: Mutex<HashMap<String, Open>>,
}

/// Why a beacon was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Invalid(&'static str),
    TooManyOpen,
}

impl Sessions {
    pub fn new(engaged_dwell: Duration, idle: Duration, max_open: usize) -> Self {
        Self { engaged_dwell, idle, max_open, open: Mutex::new(HashMap::new()) }
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
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if !open.contains_key(&b.s) && open.len() >= self.max_open {
            return Err(Refused::TooManyOpen);
        }
        let s = open.entry(b.s.clone()).or_insert_with(|| Open {
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
        let engaged = s.views >= 2 || s.goal || Duration::from_millis(s.dwell_ms) >= self.engaged_dwell;
        if engaged && !s.decided {
            s.decided = true;
            return Ok(Some(Decided {
                session_id: b.s.clone(),
                visitor_id: s.visitor_id.clone(),
                link: s.link.clone(),
                dwell_ms: s.dwell_ms,
                bounced: false,
            }));
        }
        Ok(None)
    }

    /// Sessions quiet for `idle`: the undecided ones are bounces (returned); all are forgotten.
    pub fn sweep(&self, now: Instant) -> Vec<Decided> {
        let mut out = Vec::new();
        let idle = self.idle;
        self.open.lock().unwrap_or_else(|e| e.into_inner()).retain(|id, s| {
            if now.duration_since(s.last_seen) < idle {
                return true;
            }
            if !s.decided {
                out.push(Decided {
                    session_id: id.clone(),
                    visitor_id: s.visitor_id.clone(),
                    link: s.link.clone(),
                    dwell_ms: s.dwell_ms,
                    bounced: true,
                });
            }
            false
        });
        out
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
        assert!(s.sweep(t + Duration::from_secs(5)).is_empty());
        let swept = s.sweep(t + Duration::from_secs(31));
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
