use lift_domain::event::{self, AttributionStatus, EngagementKind, EventBody};
use lift_domain::offer::{OfferState, OfferTransition};
use lift_domain::{AccountId, Event};

use super::*;

fn event(id: &str, body: EventBody) -> Event {
    Event { event_id: id.into(), source: "s".into(), occurred_at: 1_700_000_000_000_000, body }
}

fn mention(id: &str) -> Event {
    event(
        id,
        EventBody::Engagement(event::Engagement {
            kind: EngagementKind::Mention,
            actor: AccountId::new("t", "a"),
            post_id: None,
            target: Some(AccountId::new("t", "b")),
        }),
    )
}

/// Pins the round trip through the store: events and their attribution come back
/// as written, with the offsets the append gave them, and the kind filter applies.
#[tokio::test]
async fn events_and_attribution_round_trip() {
    let db = lift_store::connect("sqlite::memory:").await.unwrap();
    let click = event(
        "c",
        EventBody::LinkClick(event::LinkClick {
            link: "L".into(),
            visitor_id: "v".into(),
            landing: String::new(),
            agent_class: String::new(),
            not_counted: None,
        }),
    );
    let attr = Attribution {
        status: AttributionStatus::Click,
        link: "L".into(),
        owner: Some(AccountId::new("x", "anna")),
        campaign_id: "c1".into(),
        click_offset: 0,
    };
    let offer = event(
        "o",
        EventBody::OfferTransition(OfferTransition {
            campaign_id: "cmp_1".into(),
            creator: AccountId::new("x", "anna"),
            from: OfferState::Offered,
            to: OfferState::Accepted,
            note: Some("by the shop".into()),
        }),
    );
    let events = vec![mention("1"), click.clone(), offer.clone(), mention("1")];
    let written = append_new(&db, &events, &[None, Some(attr.clone())]).await.unwrap();
    assert_eq!(written, Some((3, 3)), "the repeat is written once");
    assert_eq!(append_new(&db, &[mention("1")], &[]).await.unwrap(), None, "already stored");
    assert_eq!(
        append(&db, &[mention("1"), mention("2")]).await.unwrap(),
        vec![Outcome::Duplicate(1), Outcome::Accepted(4)]
    );

    let all = read_after(&db, 0, &[], 10).await.unwrap();
    assert_eq!(all.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert_eq!((&all[0].event, &all[0].attribution), (&events[0], &None));
    assert_eq!((&all[1].event, &all[1].attribution), (&click, &Some(attr)));
    let offers = read_after(&db, 0, &[EventKind::OfferTransition], 10).await.unwrap();
    assert_eq!(offers.len(), 1);
    assert_eq!((offers[0].offset, &offers[0].event), (3, &offer));

    let wire = read_after_wire(&db, 1, &[EventKind::LinkClick], 10).await.unwrap();
    assert_eq!(wire.len(), 1);
    assert_eq!(wire[0].event, Some(click.to_proto()));
    assert_eq!(wire[0].ingested_at.map(|t| t.seconds > 0), Some(true));
}

/// Pins the error for a row something else wrote: corrupt, at its offset, saying
/// which part does not decode.
#[test]
fn undecodable_rows_are_corrupt() {
    let row = |body: &[u8], attribution: Option<&[u8]>| StoredEvent {
        offset: 7,
        ingested_at: 1,
        attribution: attribution.map(<[u8]>::to_vec),
        body: body.to_vec(),
    };
    let good = encode(&mention("1")).body;
    let body = decode(row(&[0xff, 0xff], None)).unwrap_err().to_string();
    assert!(body.starts_with("corrupt ledger row at offset 7: body: "), "{body}");
    let attribution = decode(row(&good, Some(&[0xff, 0xff]))).unwrap_err().to_string();
    assert!(attribution.starts_with("corrupt ledger row at offset 7: attribution: "), "{attribution}");
    assert!(decode(row(&good, None)).is_ok());
}
