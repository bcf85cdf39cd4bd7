//! The simulated campaign audience: who follows or engages with each creator,
//! and what they do once offers are out (click, bounce or stay, order).

use lift_proto::{
    ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient},
    matching::v1 as mpb,
};
use lift_runtime::client::Channel;

use super::campaign::{BASELINE, TRUE_EFFECT};

type AccountKey = (String, String);

fn key_of(a: &ipb::AccountRef) -> AccountKey {
    (a.network.clone(), a.id.clone())
}

/// Each account's audience: who followed or engaged with it, read from the ledger.
pub(super) async fn audiences(
    ingest: &mut IngestServiceClient<Channel>,
) -> anyhow::Result<std::collections::HashMap<AccountKey, Vec<ipb::AccountRef>>> {
    let mut out: std::collections::HashMap<AccountKey, std::collections::BTreeMap<AccountKey, ipb::AccountRef>> =
        Default::default();
    let mut stream = ingest
        .subscribe(ipb::SubscribeRequest {
            after_offset: 0,
            kinds: vec![ipb::EventKind::Engagement as i32, ipb::EventKind::Follow as i32],
            stop_at_head: true,
        })
        .await?
        .into_inner();
    while let Some(msg) = stream.message().await? {
        for e in msg.events {
            let (who, of) = match e.event.and_then(|e| e.kind) {
                Some(ipb::event::Kind::Engagement(g)) => (g.actor, g.target),
                Some(ipb::event::Kind::Follow(f)) if !f.unfollow => (f.follower, f.followee),
                _ => continue,
            };
            if let (Some(who), Some(of)) = (who, of) {
                out.entry(key_of(&of)).or_default().insert(key_of(&who), who);
            }
        }
    }
    Ok(out.into_iter().map(|(k, v)| (k, v.into_values().collect())).collect())
}

/// Outcomes for the offered and held-out creators' audiences: everyone may
/// order at the baseline rate; audiences of treated creators also click the
/// creator's link and order with the extra [`TRUE_EFFECT`]; a few orders carry
/// a code with no click (a leaked coupon).
pub(super) fn campaign_outcomes(
    offers: &[mpb::Offer],
    audiences: &std::collections::HashMap<AccountKey, Vec<ipb::AccountRef>>,
    end: i64,
) -> Vec<ipb::Event> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let mut events = Vec::new();
    let at = |rng: &mut rand_chacha::ChaCha8Rng| end + rng.random_range(3600..5 * 86_400);
    let ev = |id: String, t: i64, kind: ipb::event::Kind| ipb::Event {
        event_id: id,
        source: "demo-campaign".into(),
        occurred_at: Some(lift_proto::Timestamp { seconds: t, nanos: 0 }),
        kind: Some(kind),
    };
    for (i, o) in offers.iter().enumerate() {
        let Some(owner) = &o.account else { continue };
        let audience = audiences.get(&key_of(owner)).cloned().unwrap_or_default();
        for (j, member) in audience.iter().enumerate() {
            // Long enough to pass as the collector's visitor cookie (16+ characters).
            let visitor = format!("cv-{i:06}-{j:08}");
            let tag = format!("{i}-{j}");
            let t = at(&mut rng);
            let mut ordered = false;
            if !o.holdout && rng.random::<f64>() < 0.4 {
                events.push(ev(
                    format!("c-click-{tag}"),
                    t,
                    ipb::event::Kind::LinkClick(ipb::LinkClick {
                        link: o.link.clone(),
                        visitor_id: visitor.clone(),
                        landing: "https://shop.example/spring".into(),
                        ..Default::default()
                    }),
                ));
                let bounced = rng.random::<f64>() < 0.45;
                events.push(ev(
                    format!("c-session-{tag}"),
                    t + 2,
                    ipb::event::Kind::PageSession(ipb::PageSession {
                        visitor_id: visitor.clone(),
                        link: o.link.clone(),
                        dwell_ms: if bounced { 2_000 } else { 95_000 },
                        bounced,
                    }),
                ));
                // The effect flows through the click: P(order | click, stayed) is scaled so
                // that the unconditional extra probability is TRUE_EFFECT.
                if !bounced && rng.random::<f64>() < (TRUE_EFFECT / (0.4 * 0.55)).min(1.0) {
                    ordered = true;
                    events.push(ev(
                        format!("c-order-{tag}"),
                        t + 600,
                        ipb::event::Kind::Conversion(ipb::Conversion {
                            visitor_id: visitor.clone(),
                            order_id: format!("spring-{tag}"),
                            value_minor: rng.random_range(2_000..9_000),
                            currency: "EUR".into(),
                            customer: Some(member.clone()),
                            ..Default::default()
                        }),
                    ));
                }
            }
            if !ordered && rng.random::<f64>() < BASELINE {
                // Ordered anyway: no link, sometimes a coupon code passed on by a friend.
                let code = if !o.holdout && rng.random::<f64>() < 0.2 { o.code.clone() } else { String::new() };
                events.push(ev(
                    format!("c-organic-{tag}"),
                    t + 900,
                    ipb::event::Kind::Conversion(ipb::Conversion {
                        visitor_id: format!("{visitor}-o"),
                        code,
                        order_id: format!("organic-{tag}"),
                        value_minor: rng.random_range(2_000..9_000),
                        currency: "EUR".into(),
                        customer: Some(member.clone()),
                    }),
                ));
            }
        }
    }
    events.sort_by_key(|e| e.occurred_at.as_ref().map_or(0, |t| t.seconds));
    events
}
