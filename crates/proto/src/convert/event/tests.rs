use proptest::prelude::*;

use lift_domain::time::{MICROS_PER_DAY, MICROS_PER_SEC, Micros};

use super::*;

const NOW: Micros = 1_800_000_000 * MICROS_PER_SEC;

fn policy() -> ValidationPolicy {
    ValidationPolicy::at(NOW)
}

fn acct(id: &str) -> Option<pb::AccountRef> {
    Some(pb::AccountRef { network: "x".into(), id: id.into() })
}

fn base(kind: pb::event::Kind) -> pb::Event {
    pb::Event {
        event_id: "e1".into(),
        source: "test".into(),
        occurred_at: Some(time::to_timestamp(NOW - MICROS_PER_SEC)),
        kind: Some(kind),
    }
}

fn fields(e: &pb::Event) -> Vec<String> {
    Event::from_proto(e, &policy()).err().unwrap_or_default().into_iter().map(|v| v.field).collect()
}

fn valid_events() -> Vec<pb::Event> {
    use pb::event::Kind;
    vec![
        base(Kind::Account(pb::AccountUpsert {
            account: acct("a"),
            handle: "@a".into(),
            reported_followers: 10,
            ..Default::default()
        })),
        base(Kind::Post(pb::Post {
            author: acct("a"),
            post_id: "p1".into(),
            topics: vec!["Food".into()],
            ..Default::default()
        })),
        base(Kind::Engagement(pb::Engagement {
            kind: pb::EngagementKind::Repost as i32,
            actor: acct("b"),
            post_id: "p1".into(),
            target: acct("a"),
        })),
        base(Kind::Follow(pb::Follow { follower: acct("b"), followee: acct("a"), unfollow: false })),
        base(Kind::LinkClick(pb::LinkClick {
            link: "L1".into(),
            visitor_id: "v1".into(),
            landing: "https://shop/x".into(),
            ..Default::default()
        })),
        base(Kind::PageSession(pb::PageSession {
            visitor_id: "v1".into(),
            link: "L1".into(),
            dwell_ms: 3000,
            bounced: false,
        })),
        base(Kind::Conversion(pb::Conversion {
            visitor_id: "v1".into(),
            order_id: "o1".into(),
            value_minor: 1999,
            currency: "EUR".into(),
            ..Default::default()
        })),
    ]
}

/// Pins that one valid event of each kind validates and survives the wire round trip.
#[test]
fn every_kind_validates_and_round_trips() {
    for e in valid_events() {
        let ev = Event::from_proto(&e, &policy()).unwrap_or_else(|v| panic!("{v:?}"));
        let back = Event::from_proto(&ev.to_proto(), &policy()).expect("round trip");
        assert_eq!(ev, back);
    }
}

/// Pins the field paths reported for each kind's typical mistakes.
#[test]
fn violations_name_their_fields() {
    use pb::event::Kind;
    let mut e =
        base(Kind::Engagement(pb::Engagement { kind: 0, actor: acct("a"), post_id: String::new(), target: None }));
    e.event_id.clear();
    let f = fields(&e);
    assert!(f.contains(&"event_id".to_string()), "{f:?}");
    assert!(f.contains(&"engagement.kind".to_string()), "{f:?}");
    assert!(f.contains(&"engagement.target".to_string()), "{f:?}");

    let e = base(Kind::Conversion(pb::Conversion {
        order_id: "o".into(),
        value_minor: -5,
        currency: "XXX".into(),
        ..Default::default()
    }));
    let f = fields(&e);
    for want in ["conversion.visitor_id", "conversion.value_minor", "conversion.currency"] {
        assert!(f.contains(&want.to_string()), "{want} missing from {f:?}");
    }

    let e = base(Kind::Follow(pb::Follow { follower: acct("a"), followee: acct("a"), unfollow: false }));
    assert_eq!(fields(&e), vec!["follow.followee"]);

    let mut e = valid_events().remove(0);
    e.occurred_at = Some(time::to_timestamp(NOW + 2 * MICROS_PER_DAY));
    assert_eq!(fields(&e), vec!["occurred_at"]);
    e.occurred_at = None;
    e.kind = None;
    assert_eq!(fields(&e), vec!["occurred_at", "kind"]);
}

fn arb_token() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        3 => "[a-z0-9]{1,12}",
        1 => Just(String::new()),
        1 => "[a-z ]{1,5}",
        1 => "[a-z]{129,140}",
    ]
}

fn arb_event() -> impl Strategy<Value = pb::Event> {
    use pb::event::Kind;
    let acct_s = (arb_token(), arb_token()).prop_map(|(n, i)| Some(pb::AccountRef { network: n, id: i })).boxed();
    let kind = prop_oneof![
        (acct_s.clone(), arb_token()).prop_map(|(a, p)| Kind::Post(pb::Post {
            author: a,
            post_id: p,
            ..Default::default()
        })),
        (0..7i32, acct_s.clone(), arb_token(), acct_s.clone())
            .prop_map(|(k, a, p, t)| Kind::Engagement(pb::Engagement { kind: k, actor: a, post_id: p, target: t })),
        (acct_s.clone(), acct_s, any::<bool>()).prop_map(|(a, b, u)| Kind::Follow(pb::Follow {
            follower: a,
            followee: b,
            unfollow: u
        })),
        (arb_token(), arb_token(), any::<i64>(), "[A-Z]{3}").prop_map(|(v, o, val, c)| Kind::Conversion(
            pb::Conversion { visitor_id: v, order_id: o, value_minor: val, currency: c, ..Default::default() }
        )),
        (arb_token(), arb_token()).prop_map(|(l, v)| Kind::LinkClick(pb::LinkClick {
            link: l,
            visitor_id: v,
            landing: String::new(),
            ..Default::default()
        })),
        (arb_token(), any::<u64>(), any::<bool>()).prop_map(|(v, d, b)| Kind::PageSession(pb::PageSession {
            visitor_id: v,
            link: String::new(),
            dwell_ms: d,
            bounced: b
        })),
    ];
    (arb_token(), arb_token(), any::<i64>(), any::<i32>(), proptest::option::weighted(0.9, kind)).prop_map(
        |(id, src, s, n, k)| pb::Event {
            event_id: id,
            source: src,
            occurred_at: Some(crate::Timestamp { seconds: s % (4_000_000_000), nanos: n }),
            kind: k,
        },
    )
}

proptest! {
    /// Pins the validator's contract on arbitrary input: it never panics, a rejected
    /// event always names at least one field, and an accepted one round-trips.
    #[test]
    fn validation_is_total(e in arb_event()) {
        match Event::from_proto(&e, &policy()) {
            Ok(ev) => {
                prop_assert_eq!(Event::from_proto(&ev.to_proto(), &policy()), Ok(ev.clone()));
                prop_assert!(ev.occurred_at >= policy().min_time);
                if let EventBody::Conversion(c) = &ev.body {
                    prop_assert!(c.value_minor >= 0);
                    prop_assert!(is_known_currency(&c.currency));
                }
            }
            Err(v) => {
                prop_assert!(!v.is_empty());
                prop_assert!(v.iter().all(|x| !x.field.is_empty() && !x.description.is_empty()));
            }
        }
    }
}
