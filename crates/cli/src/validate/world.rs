//! The ledgers the validation report runs on: the real CollegeMsg network or a
//! seeded generated one, as ledger entries the scoring engine folds in
//! directly, and builders for the events the benchmarks inject on top.
//!
//! The report measures the model (`lift_scoring::engine`) on these ledgers
//! without the services around it, so a run over hundreds of thousands of
//! injected events takes seconds; what the services add (transport, storage)
//! is covered by the end-to-end tests and `lift validate` itself.

use std::path::Path;

use anyhow::Context;
use lift_domain::event::{
    AccountUpsert, Attribution, AttributionStatus, Conversion, Engagement, EngagementKind, Follow, LinkClick,
    PageSession, Post,
};
use lift_domain::{AccountId, Event, EventBody, LedgerEntry, Micros};
use lift_proto::ingest::v1 as ipb;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SEC: Micros = 1_000_000;
pub const DAY_SECS: i64 = 86_400;

/// A ledger under construction: entries in offset order, times in seconds.
#[derive(Debug, Default)]
pub struct Ledger {
    pub entries: Vec<LedgerEntry>,
    /// Real (base) accounts, by id.
    pub accounts: Vec<String>,
    /// First and last occurrence time of the base events, seconds.
    pub start: i64,
    pub end: i64,
    pub network: String,
    /// What the base is, for the report.
    pub name: String,
}

impl Ledger {
    fn id(&self, id: &str) -> AccountId {
        AccountId::new(self.network.clone(), id)
    }

    fn push(&mut self, at_secs: i64, body: EventBody, attribution: Option<Attribution>) {
        let offset = self.entries.len() as u64 + 1;
        self.entries.push(LedgerEntry {
            offset,
            ingested_at: at_secs * SEC,
            event: Event {
                event_id: format!("v{offset}"),
                source: "validate".into(),
                occurred_at: at_secs * SEC,
                body,
            },
            attribution,
        });
    }

    /// An account announced with its creation time (seconds), as a new sign-up is.
    pub fn account(&mut self, id: &str, created_at: i64, at: i64) {
        let account = self.id(id);
        self.push(
            at,
            EventBody::Account(AccountUpsert {
                account,
                handle: format!("@{id}"),
                display_name: id.into(),
                reported_followers: 0,
                language: String::new(),
                region: String::new(),
                created_at: Some(created_at * SEC),
            }),
            None,
        );
    }

    pub fn post(&mut self, author: &str, post_id: &str, at: i64) {
        let author = self.id(author);
        self.push(
            at,
            EventBody::Post(Post {
                author,
                post_id: post_id.into(),
                topics: vec![],
                links: vec![],
                reply_to_post_id: None,
                quote_of_post_id: None,
            }),
            None,
        );
    }

    pub fn engage(&mut self, kind: EngagementKind, actor: &str, target: &str, post: Option<&str>, at: i64) {
        let (actor, target) = (self.id(actor), self.id(target));
        self.push(
            at,
            EventBody::Engagement(Engagement { kind, actor, post_id: post.map(str::to_owned), target: Some(target) }),
            None,
        );
    }

    pub fn follow(&mut self, follower: &str, followee: &str, at: i64) {
        let (follower, followee) = (self.id(follower), self.id(followee));
        self.push(at, EventBody::Follow(Follow { follower, followee, unfollow: false }), None);
    }

    fn attribution(&self, owner: &str) -> Option<Attribution> {
        Some(Attribution {
            status: AttributionStatus::Click,
            link: format!("l/{owner}"),
            owner: Some(self.id(owner)),
            campaign_id: String::new(),
            click_offset: 0,
        })
    }

    pub fn click(&mut self, owner: &str, visitor: &str, at: i64) {
        let body = EventBody::LinkClick(LinkClick {
            link: format!("l/{owner}"),
            visitor_id: visitor.into(),
            landing: String::new(),
            agent_class: String::new(),
            not_counted: None,
        });
        let a = self.attribution(owner);
        self.push(at, body, a);
    }

    pub fn session(&mut self, owner: &str, visitor: &str, bounced: bool, at: i64) {
        let body = EventBody::PageSession(PageSession {
            visitor_id: visitor.into(),
            link: Some(format!("l/{owner}")),
            dwell_ms: if bounced { 800 } else { 45_000 },
            bounced,
        });
        let a = self.attribution(owner);
        self.push(at, body, a);
    }

    pub fn conversion(&mut self, owner: &str, visitor: &str, at: i64) {
        let body = EventBody::Conversion(Conversion {
            visitor_id: Some(visitor.into()),
            code: None,
            order_id: format!("o{}", self.entries.len() + 1),
            value_minor: 2_000,
            currency: "EUR".into(),
            customer: None,
        });
        let a = self.attribution(owner);
        self.push(at, body, a);
    }

    /// The state the engine scores: every entry folded in offset order.
    pub fn state(&self) -> lift_scoring::engine::State {
        let mut s = lift_scoring::engine::State::new();
        for e in &self.entries {
            s.apply(e);
        }
        s
    }
}

/// SNAP CollegeMsg through Lift's own importer: each message a mention from
/// sender to recipient at its time.
pub fn collegemsg(path: &Path) -> anyhow::Result<Ledger> {
    let opts = lift_ingest::import::ImportOptions { progress: false, ..Default::default() };
    let parsed = lift_ingest::import::parse_file(path, &opts).with_context(|| format!("reading {}", path.display()))?;
    let mut l = Ledger { network: opts.network, name: "SNAP CollegeMsg".into(), ..Default::default() };
    let mut seen = std::collections::BTreeSet::new();
    let (mut start, mut end) = (i64::MAX, i64::MIN);
    for e in &parsed.events {
        let Some(ipb::event::Kind::Engagement(g)) = &e.kind else { continue };
        let (Some(a), Some(b), Some(t)) = (g.actor.as_ref(), g.target.as_ref(), e.occurred_at.as_ref()) else {
            continue;
        };
        start = start.min(t.seconds);
        end = end.max(t.seconds);
        for id in [&a.id, &b.id] {
            if seen.insert(id.clone()) {
                l.accounts.push(id.clone());
            }
        }
        l.engage(EngagementKind::Mention, &a.id, &b.id, None, t.seconds);
    }
    anyhow::ensure!(!l.entries.is_empty(), "{} holds no messages", path.display());
    (l.start, l.end) = (start, end);
    Ok(l)
}

/// A seeded messaging network shaped like CollegeMsg: `accounts` people in
/// communities of about 30, heavy-tailed activity, most messages inside the
/// community and many answered, over `days` days.
pub fn generated(accounts: usize, messages: usize, days: i64, seed: u64) -> Ledger {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut l =
        Ledger { network: "gen".into(), name: format!("generated ({accounts} accounts)"), ..Default::default() };
    l.accounts = (0..accounts).map(|i| format!("g{i}")).collect();
    let (start, end) = (1_100_000_000i64, 1_100_000_000 + days * DAY_SECS);
    // Activity ∝ 1/(rank+1)^0.8: a few very active people, many quiet ones.
    let weights: Vec<f64> = (0..accounts).map(|i| 1.0 / ((i + 1) as f64).powf(0.8)).collect();
    let total: f64 = weights.iter().sum();
    let pick = |rng: &mut ChaCha8Rng| {
        let mut x = rng.random::<f64>() * total;
        for (i, w) in weights.iter().enumerate() {
            x -= w;
            if x <= 0.0 {
                return i;
            }
        }
        accounts - 1
    };
    let mut times: Vec<i64> = (0..messages).map(|_| rng.random_range(start..end)).collect();
    times.sort_unstable();
    for at in times {
        let a = pick(&mut rng);
        let b = if rng.random_bool(0.8) {
            let c = a / 30 * 30;
            (c + rng.random_range(0..30)).min(accounts - 1)
        } else {
            pick(&mut rng)
        };
        if a == b {
            continue;
        }
        let (sa, sb) = (l.accounts[a].clone(), l.accounts[b].clone());
        l.engage(EngagementKind::Mention, &sa, &sb, None, at);
        if rng.random_bool(0.4) {
            l.engage(EngagementKind::Mention, &sb, &sa, None, at + rng.random_range(60..7200));
        }
    }
    (l.start, l.end) = (start, end);
    l
}

/// A log-normal delay in seconds with the given median and log-scale spread.
pub fn lognormal_secs(rng: &mut ChaCha8Rng, median: f64, sigma: f64) -> i64 {
    // Box–Muller.
    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (median * (sigma * z).exp()).round().max(1.0) as i64
}
