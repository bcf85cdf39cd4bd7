//! Demo datasets: a deterministic generated social network, and simulated
//! outcomes (clicks, sessions, conversions) layered on any network.
//!
//! The generator is built to make the demo's point visible: accounts that
//! draw a lot of *activity* are not necessarily the ones whose links make
//! people *act*, and an engagement pod inflates activity without reach.

use std::collections::BTreeSet;

use lift_proto::ingest::v1 as pb;
use rand::{Rng, SeedableRng, seq::IndexedRandom};
use rand_chacha::ChaCha8Rng;

/// Topics posts carry in the generated network.
pub const TOPICS: [&str; 5] = ["food", "travel", "tech", "fitness", "fashion"];

const DAY: i64 = 86_400;

/// Parameters of the generated network.
#[derive(Debug, Clone)]
pub struct NetworkSpec {
    pub network: String,
    pub accounts: usize,
    pub days: i64,
    /// Unix seconds of the first day.
    pub start: i64,
    pub seed: u64,
    /// Size of the injected engagement pod (0 = none).
    pub pod_size: usize,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        Self { network: "lift-sim".into(), accounts: 1500, days: 30, start: 1_767_225_600, seed: 7, pod_size: 8 }
    }
}

/// Generated events plus the ground truth behind them.
#[derive(Debug, Clone)]
pub struct Generated {
    pub events: Vec<pb::Event>,
    /// Members of the injected engagement pod.
    pub pod: Vec<String>,
    pub network: String,
    pub end: i64,
}

fn ts(secs: i64) -> Option<lift_proto::Timestamp> {
    Some(lift_proto::Timestamp { seconds: secs, nanos: 0 })
}

fn acct(network: &str, id: usize) -> Option<pb::AccountRef> {
    Some(pb::AccountRef { network: network.into(), id: format!("u{id}") })
}

fn event(id: String, at: i64, kind: pb::event::Kind) -> pb::Event {
    pb::Event { event_id: id, source: "demo-generator".into(), occurred_at: ts(at), kind: Some(kind) }
}

/// A preferential-attachment network with topical posting, heavy-tailed
/// activity, follows, the four engagement kinds, and an engagement pod.
pub fn generate(spec: &NetworkSpec) -> Generated {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let n = spec.accounts.max(10);
    let net = spec.network.as_str();
    let mut events = Vec::new();
    let end = spec.start + spec.days * DAY;

    // Each account: a home topic, a posting rate, and an "attention" weight
    // (how much others engage with it) drawn heavy-tailed.
    let topic: Vec<usize> = (0..n).map(|_| rng.random_range(0..TOPICS.len())).collect();
    let post_rate: Vec<f64> = (0..n).map(|_| (rng.random::<f64>().powi(3) * 2.0) + 0.02).collect();
    let attention: Vec<f64> = (0..n).map(|_| 1.0 / (rng.random::<f64>().max(1e-3)).powf(0.8)).collect();
    let total_attention: f64 = attention.iter().sum();

    for i in 0..n {
        let followers = (attention[i] * 40.0 * rng.random_range(0.5..1.5)) as u64;
        let created = spec.start - rng.random_range(30..2000) * DAY;
        events.push(event(
            format!("acct-{i}"),
            spec.start,
            pb::event::Kind::Account(pb::AccountUpsert {
                account: acct(net, i),
                handle: format!("@{}_{i}", TOPICS[topic[i]]),
                display_name: format!("Creator {i}"),
                reported_followers: followers,
                language: "en".into(),
                region: ["US", "GB", "DE", "FR", "BR"][i % 5].into(),
                created_at: ts(created),
            }),
        ));
    }

    // Follows by preferential attachment on attention.
    let pick = |rng: &mut ChaCha8Rng| -> usize {
        let mut x = rng.random::<f64>() * total_attention;
        for (j, a) in attention.iter().enumerate() {
            x -= a;
            if x <= 0.0 {
                return j;
            }
        }
        n - 1
    };
    let mut follows = BTreeSet::new();
    for i in 0..n {
        let k = rng.random_range(3..15);
        for _ in 0..k {
            let j = pick(&mut rng);
            if j != i && follows.insert((i, j)) {
                let at = spec.start + rng.random_range(0..spec.days * DAY / 4);
                events.push(event(
                    format!("follow-{i}-{j}"),
                    at,
                    pb::event::Kind::Follow(pb::Follow {
                        follower: acct(net, i),
                        followee: acct(net, j),
                        unfollow: false,
                    }),
                ));
            }
        }
    }

    // Posts and the engagement they draw.
    let kinds = [
        (pb::EngagementKind::Like, 0.55),
        (pb::EngagementKind::Repost, 0.2),
        (pb::EngagementKind::Reply, 0.15),
        (pb::EngagementKind::Mention, 0.1),
    ];
    let mut post_no = 0usize;
    for i in 0..n {
        let posts = (post_rate[i] * spec.days as f64 * rng.random_range(0.5..1.5)).round() as usize;
        for _ in 0..posts {
            post_no += 1;
            let at = spec.start + rng.random_range(0..spec.days * DAY);
            let post_id = format!("p{post_no}");
            let t = if rng.random::<f64>() < 0.8 { topic[i] } else { rng.random_range(0..TOPICS.len()) };
            events.push(event(
                format!("post-{post_no}"),
                at,
                pb::event::Kind::Post(pb::Post {
                    author: acct(net, i),
                    post_id: post_id.clone(),
                    topics: vec![TOPICS[t].into()],
                    ..Default::default()
                }),
            ));
            // Responses scale with the author's attention, not with how much it posts.
            let expected = attention[i] * 0.6;
            let responses = (expected * rng.random_range(0.3..1.7)) as usize;
            for r in 0..responses.min(200) {
                let actor = pick(&mut rng);
                if actor == i {
                    continue;
                }
                let u: f64 = rng.random();
                let mut acc = 0.0;
                let mut kind = pb::EngagementKind::Like;
                for (k, p) in kinds {
                    acc += p;
                    if u <= acc {
                        kind = k;
                        break;
                    }
                }
                let delay = rng.random_range(60..3 * DAY);
                events.push(event(
                    format!("eng-{post_no}-{r}"),
                    (at + delay).min(end - 1),
                    pb::event::Kind::Engagement(pb::Engagement {
                        kind: kind as i32,
                        actor: acct(net, actor),
                        post_id: post_id.clone(),
                        target: acct(net, i),
                    }),
                ));
            }
        }
    }

    // An engagement pod: a handful of low-attention accounts that post often and
    // repost/like each other within minutes, every time.
    let mut pod: Vec<usize> = (0..n).filter(|&i| attention[i] < 2.0).take(spec.pod_size).collect();
    pod.sort_unstable();
    for (round, day) in (0..spec.days).step_by(1).enumerate() {
        for &author in &pod {
            post_no += 1;
            let at = spec.start + day * DAY + rng.random_range(0..DAY / 2);
            let post_id = format!("p{post_no}");
            events.push(event(
                format!("post-{post_no}"),
                at,
                pb::event::Kind::Post(pb::Post {
                    author: acct(net, author),
                    post_id: post_id.clone(),
                    topics: vec![TOPICS[topic[author]].into()],
                    ..Default::default()
                }),
            ));
            for &member in &pod {
                if member == author {
                    continue;
                }
                for (k, kind) in [pb::EngagementKind::Repost, pb::EngagementKind::Like].into_iter().enumerate() {
                    events.push(event(
                        format!("pod-{round}-{author}-{member}-{k}"),
                        at + rng.random_range(30..600),
                        pb::event::Kind::Engagement(pb::Engagement {
                            kind: kind as i32,
                            actor: acct(net, member),
                            post_id: post_id.clone(),
                            target: acct(net, author),
                        }),
                    ));
                }
            }
        }
    }

    events.sort_by_key(|e| e.occurred_at.as_ref().map_or(0, |t| t.seconds));
    Generated { events, pod: pod.iter().map(|i| format!("u{i}")).collect(), network: spec.network.clone(), end }
}

/// One creator's tracking link and its true (hidden) behaviour.
#[derive(Debug, Clone)]
pub struct SimulatedLink {
    pub owner: pb::AccountRef,
    pub link: String,
    /// Expected clicks over the simulated period.
    pub clicks: f64,
    pub bounce: f64,
    pub conversion: f64,
}

/// Draws per-creator true outcome rates, independent of how much activity
/// the creator draws: that independence is what the action dimension must find.
pub fn outcome_links(owners: &[pb::AccountRef], seed: u64) -> Vec<SimulatedLink> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    owners
        .iter()
        .enumerate()
        .map(|(i, o)| SimulatedLink {
            owner: o.clone(),
            link: format!("lift.to/{}-{i}", o.id),
            clicks: rng.random_range(5.0..120.0),
            bounce: rng.random_range(0.2..0.9),
            conversion: if rng.random::<f64>() < 0.2 {
                rng.random_range(0.08..0.2)
            } else {
                rng.random_range(0.0..0.04)
            },
        })
        .collect()
}

/// Clicks, page sessions and conversions for the links, over `[start, end)`.
pub fn outcome_events(links: &[SimulatedLink], start: i64, end: i64, seed: u64) -> Vec<pb::Event> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0c7c);
    let mut events = Vec::new();
    let mut visitor = 0u64;
    for l in links {
        let clicks = (l.clicks * rng.random_range(0.7..1.3)).round() as usize;
        for c in 0..clicks {
            visitor += 1;
            let v = format!("v{visitor}");
            let at = rng.random_range(start..end - 3600);
            let tag = format!("{}-{c}", l.link);
            events.push(event(
                format!("click-{tag}"),
                at,
                pb::event::Kind::LinkClick(pb::LinkClick {
                    link: l.link.clone(),
                    visitor_id: v.clone(),
                    landing: "https://shop.example/landing".into(),
                    ..Default::default()
                }),
            ));
            let bounced = rng.random::<f64>() < l.bounce;
            events.push(event(
                format!("session-{tag}"),
                at + 1,
                pb::event::Kind::PageSession(pb::PageSession {
                    visitor_id: v.clone(),
                    link: l.link.clone(),
                    dwell_ms: if bounced { rng.random_range(500..5_000) } else { rng.random_range(20_000..400_000) },
                    bounced,
                }),
            ));
            if !bounced && rng.random::<f64>() < l.conversion / (1.0 - l.bounce).max(0.05) {
                events.push(event(
                    format!("order-{tag}"),
                    at + rng.random_range(60..3000),
                    pb::event::Kind::Conversion(pb::Conversion {
                        visitor_id: v,
                        order_id: format!("o-{tag}"),
                        value_minor: rng.random_range(1_500..12_000),
                        currency: "EUR".into(),
                        ..Default::default()
                    }),
                ));
            }
        }
    }
    events.sort_by_key(|e| e.occurred_at.as_ref().map_or(0, |t| t.seconds));
    events
}

/// Picks `k` distinct items deterministically.
pub fn sample<T: Clone>(items: &[T], k: usize, seed: u64) -> Vec<T> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    items.choose_multiple(&mut rng, k.min(items.len())).cloned().collect()
}

#[cfg(test)]
mod tests {
    use lift_proto::convert::prelude::*;

    use super::*;

    /// Pins determinism: the same spec yields the same events.
    #[test]
    fn generation_is_deterministic() {
        let spec = NetworkSpec { accounts: 200, days: 5, ..Default::default() };
        let a = generate(&spec);
        let b = generate(&spec);
        assert_eq!(a.events, b.events);
        assert_eq!(a.pod.len(), 8);
    }

    /// Pins that every generated event passes ingestion's validation.
    #[test]
    fn generated_events_are_valid() {
        let spec = NetworkSpec { accounts: 200, days: 5, ..Default::default() };
        let g = generate(&spec);
        let policy = lift_domain::ValidationPolicy::at(i64::MAX / 4);
        let mut ids = BTreeSet::new();
        for e in &g.events {
            lift_domain::Event::from_proto(e, &policy).unwrap_or_else(|v| panic!("{e:?}: {v:?}"));
            assert!(ids.insert(e.event_id.clone()), "duplicate id {}", e.event_id);
        }
        let owners: Vec<_> = (0..20).filter_map(|i| acct(&g.network, i)).collect();
        let links = outcome_links(&owners, 1);
        for e in outcome_events(&links, spec.start, g.end, 1) {
            lift_domain::Event::from_proto(&e, &policy).unwrap_or_else(|v| panic!("{e:?}: {v:?}"));
            assert!(ids.insert(e.event_id.clone()), "duplicate id {}", e.event_id);
        }
    }
}
