//! Reports whose members start at their own offsets, and members added to a
//! report that is already following the ledger.

use std::collections::BTreeSet;

use super::{Arm, IssuedOffer, Member, ReportBuilder, ReportSummary};
use crate::account::AccountId;
use crate::campaign::SplitMix64;
use crate::event::{
    Attribution, AttributionStatus, Conversion, Engagement, EngagementKind, Event, EventBody, Follow, LedgerEntry,
    LinkClick, PageSession, Post,
};

const CAMPAIGN: &str = "cmp1";

fn acct(id: &str) -> AccountId {
    AccountId::new("x", id)
}

fn offered(id: &str, start: u64) -> Member {
    let offer = IssuedOffer { account: acct(id), link: format!("l-{id}"), code: format!("C-{id}"), cost: 500 };
    Member { arm: Arm::Offered(offer), start }
}

fn held_out(id: &str, start: u64) -> Member {
    Member { arm: Arm::HeldOut(acct(id)), start }
}

fn entry(offset: u64, body: EventBody, attribution: Option<Attribution>) -> LedgerEntry {
    LedgerEntry {
        offset,
        ingested_at: 0,
        event: Event { event_id: format!("e{offset}"), source: "t".into(), occurred_at: 0, body },
        attribution,
    }
}

fn credited(status: AttributionStatus, owner: &str) -> Option<Attribution> {
    Some(Attribution {
        status,
        link: format!("l-{owner}"),
        owner: Some(acct(owner)),
        campaign_id: CAMPAIGN.into(),
        click_offset: 0,
    })
}

fn follow(offset: u64, follower: &str, followee: &str) -> LedgerEntry {
    follow_or_not(offset, follower, followee, false)
}

fn follow_or_not(offset: u64, follower: &str, followee: &str, unfollow: bool) -> LedgerEntry {
    entry(offset, EventBody::Follow(Follow { follower: acct(follower), followee: acct(followee), unfollow }), None)
}

fn post(offset: u64, author: &str, id: &str) -> LedgerEntry {
    let p = Post {
        author: acct(author),
        post_id: id.into(),
        topics: Vec::new(),
        links: Vec::new(),
        reply_to_post_id: None,
        quote_of_post_id: None,
    };
    entry(offset, EventBody::Post(p), None)
}

fn like(offset: u64, actor: &str, post_id: &str) -> LedgerEntry {
    let g = Engagement { kind: EngagementKind::Like, actor: acct(actor), post_id: Some(post_id.into()), target: None };
    entry(offset, EventBody::Engagement(g), None)
}

fn click(offset: u64, owner: &str, visitor: &str) -> LedgerEntry {
    let c = LinkClick {
        link: format!("l-{owner}"),
        visitor_id: visitor.into(),
        landing: String::new(),
        agent_class: String::new(),
        not_counted: None,
    };
    entry(offset, EventBody::LinkClick(c), credited(AttributionStatus::Click, owner))
}

fn session(offset: u64, visitor: &str) -> LedgerEntry {
    let s = PageSession { visitor_id: visitor.into(), link: None, dwell_ms: 1_000, bounced: false };
    entry(offset, EventBody::PageSession(s), None)
}

fn order(offset: u64, id: &str, customer: &str, attribution: Option<Attribution>) -> LedgerEntry {
    let c = Conversion {
        visitor_id: None,
        code: None,
        order_id: id.into(),
        value_minor: 1_000,
        currency: "EUR".into(),
        customer: Some(acct(customer)),
    };
    entry(offset, EventBody::Conversion(c), attribution)
}

fn fed(members: &[Member], offers_offset: u64, ledger: &[LedgerEntry]) -> ReportBuilder {
    let mut b = ReportBuilder::with_members(CAMPAIGN, "EUR", members, offers_offset);
    for e in ledger {
        b.feed(e);
    }
    b
}

/// Pins per-member starts on a scripted program computed by hand: `a` offered
/// and `c` held out at offset 10, `b` offered and `d` held out at 20.
#[test]
fn each_member_counts_from_its_own_start() {
    let members = [offered("a", 10), held_out("c", 10), offered("b", 20), held_out("d", 20)];
    let ledger = [
        follow(1, "x1", "a"),
        follow(2, "x2", "b"),
        follow(3, "x3", "c"),
        post(4, "b", "pb"),
        // After a's and c's start: not their audience, but b's and d's (before theirs).
        follow(12, "x4", "a"),
        follow(13, "x4", "b"),
        like(14, "x5", "pb"),
        follow(15, "x6", "d"),
        // Between the starts: a's and c's outcomes, not b's or d's.
        click(16, "a", "v1"),
        order(17, "o1", "x1", credited(AttributionStatus::Click, "a")),
        order(18, "o2", "x2", None),
        order(19, "o3", "x6", None),
        // After every start.
        follow(21, "x7", "b"),
        click(22, "b", "v2"),
        session(23, "v2"),
        order(24, "o4", "x2", credited(AttributionStatus::Click, "b")),
        order(25, "o5", "x5", None),
        order(26, "o6", "x3", None),
        order(27, "o7", "x7", None),
        // o2 again: placed before b's start, so not b's outcome now either.
        order(28, "o2", "x2", None),
    ];
    let r = fed(&members, 10, &ledger).summary();
    let a = &r.per_creator[&acct("a")];
    let b = &r.per_creator[&acct("b")];
    assert_eq!((a.clicks, a.conversions, a.cost), (1, 1, 500));
    assert_eq!((b.clicks, b.sessions, b.conversions, b.cost), (1, 1, 1, 500));
    assert_eq!((r.totals.clicks, r.totals.sessions, r.totals.conversions, r.totals.cost), (2, 1, 2, 1_000));
    // Audiences: a {x1}, b {x2, x4, x5}, c {x3}, d {x6}; x7 came after b's start.
    // a: o1 (17). b: o4 (24), o5 (25) — not o2 (18, before its start; 28 repeats it).
    // c: o6 (26). d: none — o3 (19) came before its start.
    assert_eq!(r.treated_outcomes, vec![1.0, 2.0]);
    assert_eq!(r.control_outcomes, vec![1.0, 0.0]);
}

/// Pins that members added while the builder follows the ledger (at random
/// positions, before or after their starts, saved and restored in between)
/// give the report a builder knowing every member from the start gives, and
/// the report the two-range read (`campaign_report_rescan`) gives — over
/// random ledgers of social activity, credited clicks, sessions and orders.
#[test]
fn added_members_equal_a_builder_that_knew_them() {
    for seed in 0..300 {
        let mut rng = SplitMix64::new(seed);
        let creators = 6usize;
        let len = 80u64;
        // Starts rise with the creator: grants come in evaluation order.
        let mut starts: Vec<u64> = (0..creators).map(|_| 5 + rng.below(60)).collect();
        starts.sort_unstable();
        let members: Vec<Member> = (0..creators)
            .map(|i| {
                let id = format!("k{i}");
                if rng.below(3) == 0 { held_out(&id, starts[i]) } else { offered(&id, starts[i]) }
            })
            .collect();
        let treated: Vec<usize> = (0..creators).filter(|i| matches!(members[*i].arm, Arm::Offered(_))).collect();
        let mut ledger = Vec::new();
        for at in 1..=len {
            let k = rng.below(creators as u64) as usize;
            let fan = format!("f{}", rng.below(12));
            let e = match rng.below(7) {
                0 => follow_or_not(at, &fan, &format!("k{k}"), rng.below(5) == 0),
                1 => post(at, &format!("k{k}"), &format!("p{at}")),
                2 => like(at, &fan, &format!("p{}", 1 + rng.below(at))),
                3 | 4 => {
                    // Credited only once the owner's link exists (after its start).
                    match treated.iter().copied().filter(|t| starts[*t] < at).nth(rng.below(3) as usize) {
                        Some(t) => click(at, &format!("k{t}"), &format!("v{}", rng.below(4))),
                        None => session(at, &format!("v{}", rng.below(4))),
                    }
                }
                5 => session(at, &format!("v{}", rng.below(4))),
                _ => {
                    let owner = treated.iter().copied().filter(|t| starts[*t] < at).nth(rng.below(4) as usize);
                    let att = owner.and_then(|t| credited(AttributionStatus::CodeWithoutClick, &format!("k{t}")));
                    order(at, &format!("o{}", rng.below(30)), &fan, att)
                }
            };
            ledger.push(e);
        }
        let offers_offset = starts[0];
        let whole = fed(&members, offers_offset, &ledger).summary();

        // Adopted with the first member, then the others learned in groups.
        let mut b = ReportBuilder::with_members(CAMPAIGN, "EUR", &members[..1], offers_offset);
        let mut known = 1usize;
        let mut position = starts[0] + rng.below(10);
        for e in ledger.iter().filter(|e| e.offset <= position) {
            b.feed(e);
        }
        while known < creators {
            let upto = (known + 1 + rng.below(2) as usize).min(creators);
            // The consumer learns of grants up to `upto` at `position`.
            let mut add = b.addition(&members[..upto], position);
            for e in ledger.iter().filter(|e| e.offset <= position) {
                add.feed(e);
            }
            b.apply(add).unwrap_or_else(|why| panic!("seed {seed}: {why}"));
            let so_far: Vec<LedgerEntry> = ledger.iter().filter(|e| e.offset <= position).cloned().collect();
            assert_eq!(
                b.summary(),
                fed(&members[..upto], offers_offset, &so_far).summary(),
                "seed {seed} at {position}"
            );
            b = serde_json::from_str(&serde_json::to_string(&b).expect("save")).expect("restore");
            known = upto;
            let next = (position + rng.below(20)).min(len);
            for e in ledger.iter().filter(|e| e.offset > position && e.offset <= next) {
                b.feed(e);
            }
            position = next;
        }
        for e in ledger.iter().filter(|e| e.offset > position) {
            b.feed(e);
        }
        assert_eq!(b.members(), creators);
        assert_eq!(b.summary(), whole, "seed {seed}");

        // The rescan's read: social activity up to the latest start, then outcomes after the earliest.
        let mut two = ReportBuilder::with_members(CAMPAIGN, "EUR", &members, offers_offset);
        let (first, last) = two.start_range();
        for e in &ledger {
            if two.reads(e.offset, e.event.kind()) && e.offset <= last && !is_outcome(e) {
                two.observe(e);
            }
        }
        for e in &ledger {
            if e.offset > first && is_outcome(e) {
                two.observe(e);
            }
        }
        assert_eq!(two.summary(), whole, "seed {seed}: two ranges");
    }
}

fn is_outcome(e: &LedgerEntry) -> bool {
    matches!(e.event.body, EventBody::LinkClick(_) | EventBody::PageSession(_) | EventBody::Conversion(_))
}

/// Pins what an addition refuses (the caller then rebuilds from the start):
/// an outcome credited to a new member before its start, a new member's link
/// named by an outcome ingestion did not credit, a start before the report's.
#[test]
fn additions_the_builder_cannot_merge_are_refused() {
    let first = [offered("a", 10)];
    let early = [click(12, "b", "v1")];
    let b = fed(&first, 10, &early);
    let mut add = b.addition(&[offered("b", 15)], 12);
    early.iter().for_each(|e| add.feed(e));
    let mut b2 = fed(&first, 10, &early);
    let why = b2.apply(add).expect_err("credited before its start");
    assert!(why.contains("before its start"), "{why}");
    assert_eq!(b2.members(), 1, "a refused addition changes nothing");

    let mut uncredited = click(12, "b", "v1");
    uncredited.attribution = None;
    let ledger = [uncredited];
    let mut b = fed(&first, 10, &ledger);
    let mut add = b.addition(&[offered("b", 11)], 12);
    ledger.iter().for_each(|e| add.feed(e));
    let why = b.apply(add).expect_err("uncredited link");
    assert!(why.contains("l-b"), "{why}");

    let mut b = fed(&first, 10, &[]);
    let add = b.addition(&[held_out("c", 9)], 12);
    assert!(b.apply(add).expect_err("early start").contains("before the report's earliest start"));

    // Members it knows are not added again.
    let b = fed(&first, 10, &[]);
    assert!(b.addition(&[offered("a", 10)], 12).is_empty());
}

/// Pins that a one-shot campaign's builder (`new`) is the builder whose
/// members all start at the offers offset.
#[test]
fn one_shot_is_every_member_at_the_offers_offset() {
    let offers = [IssuedOffer { account: acct("a"), link: "l-a".into(), code: "C-a".into(), cost: 500 }];
    let controls: BTreeSet<AccountId> = [acct("c")].into();
    let ledger = [
        follow(1, "x1", "a"),
        follow(2, "x2", "c"),
        click(11, "a", "v1"),
        order(12, "o1", "x1", None),
        order(13, "o2", "x2", None),
    ];
    let mut one = ReportBuilder::new(CAMPAIGN, "EUR", &offers, &controls, 10);
    ledger.iter().for_each(|e| one.feed(e));
    let members = fed(&[offered("a", 10), held_out("c", 10)], 10, &ledger);
    let (x, y): (ReportSummary, ReportSummary) = (one.summary(), members.summary());
    assert_eq!(x, y);
    assert_eq!((x.treated_outcomes, x.control_outcomes), (vec![1.0], vec![1.0]));
}
