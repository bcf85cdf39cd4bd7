use lift_domain::event::{EngagementKind, EventBody};
use lift_domain::{AccountId, event};

use super::*;

/// The store keeps bodies as given: any bytes do, these name the event.
fn body(e: &Event) -> Vec<u8> {
    format!("{}/{}", e.source, e.event_id).into_bytes()
}

fn mention(source: &str, id: &str, actor: &str, target: &str) -> NewEvent {
    let e = Event {
        event_id: id.into(),
        source: source.into(),
        occurred_at: 1_700_000_000_000_000,
        body: EventBody::Engagement(event::Engagement {
            kind: EngagementKind::Mention,
            actor: AccountId::new("t", actor),
            post_id: None,
            target: Some(AccountId::new("t", target)),
        }),
    };
    NewEvent::new(&e, body(&e))
}

/// Pins the indexed columns: what the kind filter, the dedupe key and the
/// account index see.
#[test]
fn new_event_indexes_the_domain_event() {
    let e = mention("s", "1", "a", "b");
    assert_eq!((e.source.as_str(), e.event_id.as_str(), e.kind), ("s", "1", EventKind::Engagement));
    assert_eq!((e.occurred_at, e.account.as_deref()), (1_700_000_000_000_000, Some("t:a")));
    assert_eq!(e.body, b"s/1");
}

/// Pins idempotency on (source, event_id): replays and in-batch repeats keep the
/// first offset, offsets stay dense, and the same id from another source is new.
#[tokio::test]
async fn append_is_idempotent_and_dense() {
    let db = crate::connect("sqlite::memory:").await.unwrap();
    let batch = vec![mention("s", "1", "a", "b"), mention("s", "2", "b", "a"), mention("s", "1", "a", "b")];
    let out = append(&db, &batch).await.unwrap();
    assert_eq!(out, vec![Outcome::Accepted(1), Outcome::Accepted(2), Outcome::Duplicate(1)]);
    let again = append(&db, &[mention("s", "2", "b", "a"), mention("other", "1", "a", "b")]).await.unwrap();
    assert_eq!(again, vec![Outcome::Duplicate(2), Outcome::Accepted(3)]);
    assert_eq!(head(&db).await.unwrap(), 3);
    let read = read_after(&db, 0, &[], 10).await.unwrap();
    assert_eq!(read.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(read[0].body, batch[0].body);
    assert_eq!(read[0].attribution, None);
}

/// Pins that attribution is stored with the event and read back, and that the
/// kind filter and limit apply.
#[tokio::test]
async fn attribution_and_kind_filter_round_trip() {
    let db = crate::connect("sqlite::memory:").await.unwrap();
    let click = &Event {
        event_id: "c".into(),
        source: "pixel".into(),
        occurred_at: 1_700_000_000_000_000,
        body: EventBody::LinkClick(event::LinkClick {
            link: "L".into(),
            visitor_id: "v".into(),
            landing: String::new(),
            agent_class: String::new(),
            not_counted: None,
        }),
    };
    let attr = b"credited to anna".to_vec();
    let events = vec![mention("s", "1", "a", "b"), NewEvent::new(click, body(click))];
    let mut a = Appender::begin(&db).await.unwrap();
    let plan = a.plan(&events).await.unwrap();
    a.write(&events, &plan, &[None, Some(attr.clone())]).await.unwrap();
    assert_eq!(a.commit().await.unwrap(), 2);
    let clicks = read_after(&db, 0, &[EventKind::LinkClick], 10).await.unwrap();
    assert_eq!(clicks.len(), 1);
    assert_eq!(clicks[0].offset, 2);
    assert_eq!(clicks[0].attribution, Some(attr));
    assert_eq!(clicks[0].body, b"pixel/c");
    assert_eq!(read_after(&db, 0, &[], 1).await.unwrap().len(), 1);
    assert!(read_after(&db, 2, &[], 10).await.unwrap().is_empty());
}

/// Pins that a rolled-back append leaves neither rows nor a moved head.
#[tokio::test]
async fn dropped_appender_rolls_back() {
    let db = crate::connect("sqlite::memory:").await.unwrap();
    {
        let events = vec![mention("s", "1", "a", "b")];
        let mut a = Appender::begin(&db).await.unwrap();
        let plan = a.plan(&events).await.unwrap();
        a.write(&events, &plan, &[]).await.unwrap();
    }
    assert_eq!(head(&db).await.unwrap(), 0);
    assert_eq!(append(&db, &[mention("s", "1", "a", "b")]).await.unwrap(), vec![Outcome::Accepted(1)]);
}

/// Pins the optimistic path: fresh events skip the lookup; a stored one makes
/// `write_new` write nothing and release the offsets, and the full plan then works.
#[tokio::test]
async fn write_new_falls_back_when_an_event_is_stored() {
    let db = crate::connect("sqlite::memory:").await.unwrap();
    append(&db, &[mention("s", "1", "a", "b")]).await.unwrap();
    let events = vec![mention("s", "2", "a", "b"), mention("s", "1", "a", "b")];
    let mut a = Appender::begin(&db).await.unwrap();
    let optimistic = a.plan_new(&events);
    assert_eq!(optimistic, vec![Outcome::Accepted(2), Outcome::Accepted(3)]);
    assert_eq!(a.write_new(&events, &optimistic, &[]).await.unwrap(), None);
    let plan = a.plan(&events).await.unwrap();
    assert_eq!(plan, vec![Outcome::Accepted(2), Outcome::Duplicate(1)]);
    a.write(&events, &plan, &[]).await.unwrap();
    assert_eq!(a.commit().await.unwrap(), 2);
    let mut a = Appender::begin(&db).await.unwrap();
    let fresh = vec![mention("s", "3", "a", "b"), mention("s", "3", "a", "b")];
    let plan = a.plan_new(&fresh);
    assert_eq!(a.write_new(&fresh, &plan, &[]).await.unwrap(), Some(1));
    assert_eq!(a.commit().await.unwrap(), 3);
    assert_eq!(read_after(&db, 0, &[], 10).await.unwrap().len(), 3);
}
