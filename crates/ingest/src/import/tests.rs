use std::io::Cursor;

use super::*;

fn p() -> &'static Path {
    Path::new("test.csv")
}

/// Pins CollegeMsg's shipped format: header, CRLF, `M/D/YY H:MM AM/PM` as UTC.
#[test]
fn parses_collegemsg_rows() {
    let csv = "Source,Target,Timestamp\r\n1,2,4/15/04 2:56 PM\r\n3,4,4/16/04 10:50 PM\r\n1,3,10/26/04 12:05 AM\r\n";
    let out = parse_edge_list(Cursor::new(csv), p(), "collegemsg", "import-collegemsg").unwrap();
    assert_eq!((out.rows, out.accounts, out.events.len()), (3, 4, 7));
    // 2004-04-15T14:56:00Z
    assert_eq!(out.events[2].occurred_at.as_ref().map(|t| t.seconds), Some(1_082_040_960));
    assert_eq!(out.lines, vec![2, 2, 2, 3, 3, 3, 4]);
    let Some(pb::event::Kind::Engagement(g)) = &out.events[2].kind else { panic!("engagement expected") };
    assert_eq!((g.actor.as_ref().unwrap().id.as_str(), g.target.as_ref().unwrap().id.as_str()), ("1", "2"));
    assert_eq!(parse_us_time("10/26/04 12:05 AM"), Some(1_098_749_100));
}

/// Pins that event ids are deterministic (re-import adds nothing) yet distinct for
/// identical rows on different lines (two messages in the same minute).
#[test]
fn event_ids_are_deterministic_and_per_line() {
    let csv = "1 2 1082040960\n1 2 1082040960\n";
    let a = parse_edge_list(Cursor::new(csv), p(), "n", "s").unwrap();
    let b = parse_edge_list(Cursor::new(csv), p(), "n", "s").unwrap();
    let ids = |x: &Parsed| x.events.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
    assert_eq!(a.rows, 2);
    assert_ne!(a.events[2].event_id, a.events[3].event_id);
}

/// Pins line-numbered errors, and that a header is accepted only on the first row.
#[test]
fn reports_bad_lines() {
    let err = parse_edge_list(Cursor::new("# c\n1,2,1082040960\n1,2\n"), p(), "n", "s").unwrap_err();
    assert!(matches!(err, ImportError::Parse { line: 3, .. }), "{err}");
    let err = parse_edge_list(Cursor::new("1,2,1082040960\nSource,Target,Timestamp\n"), p(), "n", "s").unwrap_err();
    assert!(matches!(err, ImportError::Parse { line: 2, .. }), "{err}");
}

/// Pins the proto JSON mapping: camelCase and proto names, enum names, RFC 3339.
#[test]
fn parses_ndjson() {
    let nd = r#"{"eventId":"e1","source":"s","occurredAt":"2024-01-02T03:04:05Z","engagement":{"kind":"ENGAGEMENT_KIND_LIKE","actor":{"network":"x","id":"a"},"postId":"p"}}

{"event_id":"e2","source":"s","occurred_at":"2024-01-02T03:04:06.5Z","conversion":{"visitor_id":"v","order_id":"o","value_minor":"1250","currency":"EUR"}}
"#;
    let out = parse_ndjson(Cursor::new(nd), Path::new("x.ndjson")).unwrap();
    assert_eq!(out.lines, vec![1, 3]);
    assert_eq!(out.events[0].event_id, "e1");
    assert_eq!(out.events[0].occurred_at.as_ref().map(|t| t.seconds), Some(1_704_164_645));
    let Some(pb::event::Kind::Engagement(g)) = &out.events[0].kind else { panic!("engagement expected") };
    assert_eq!(g.kind, pb::EngagementKind::Like as i32);
    let Some(pb::event::Kind::Conversion(c)) = &out.events[1].kind else { panic!("conversion expected") };
    assert_eq!((c.value_minor, c.currency.as_str()), (1250, "EUR"));
    let err = parse_ndjson(Cursor::new("{\"eventId\":\"e1\"}\n{\"nope\":1}\n"), Path::new("x.ndjson")).unwrap_err();
    assert!(matches!(err, ImportError::Parse { line: 2, .. }), "{err}");
}

/// Pins format detection by file name.
#[test]
fn detects_format() {
    assert_eq!(Format::from_path(Path::new("a/b.ndjson.gz")), Format::Ndjson);
    assert_eq!(Format::from_path(Path::new("events.jsonl")), Format::Ndjson);
    assert_eq!(Format::from_path(Path::new("collegemsg.csv.gz")), Format::EdgeList);
}
