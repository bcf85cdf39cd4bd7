//! Attribution at ingestion: which link owner (and campaign) an outcome event is
//! credited to. On the SQL ledger it runs inside the append transaction, after
//! offsets are assigned and under the ledger lock, so it sees every earlier click
//! exactly once — including clicks earlier in the same batch — and its answer is
//! stored with the event for every consumer to read. On JetStream it runs before
//! the publish against the same registry (see `ledger::nats` for the difference).
//!
//! - A click on a registered link → `CLICK`, owner and campaign of the link.
//! - A page session that names a registered link → `CLICK` with that owner.
//! - A conversion → the same visitor's last click at or before it whose link's
//!   window still covers it (`CLICK`, with the click's offset); failing that, a
//!   registered code → `CODE_WITHOUT_CLICK` (the coupon-leak signal); otherwise
//!   `UNATTRIBUTED`.

use std::collections::HashMap;

use lift_domain::event::{Attribution, AttributionStatus, EventBody};
use lift_domain::{Event, Micros};
use lift_store::ConnectionTrait;
use lift_store::ledger::Outcome;
use lift_store::links::{self, Click, Link};

use crate::Error;

/// Attribution for each event of `events` (by index; `None` for kinds that carry
/// none and for duplicates) and the clicks to index with them.
pub(crate) async fn attribute(
    txn: &impl ConnectionTrait,
    events: &[Event],
    plan: &[Outcome],
) -> Result<(Vec<Option<Attribution>>, Vec<Click>), Error> {
    let mut out = vec![None; events.len()];
    let mut clicks: Vec<Click> = Vec::new();
    let referenced = events.iter().zip(plan).filter(|(_, o)| o.is_accepted()).filter_map(|(e, _)| match &e.body {
        EventBody::LinkClick(c) => Some(c.link.as_str()),
        EventBody::PageSession(s) => s.link.as_deref(),
        EventBody::Conversion(c) => c.code.as_deref(),
        _ => None,
    });
    let registered = links::get_many(txn, referenced).await?;
    if registered.is_empty() && !events.iter().any(|e| matches!(e.body, EventBody::Conversion(_))) {
        // Nothing to credit: the common case for social events.
        return Ok((out, clicks));
    }
    // Clicks of this batch, by visitor, in offset order, with their links.
    let mut batch_clicks: HashMap<&str, Vec<(Click, &Link)>> = HashMap::new();
    for (i, (e, o)) in events.iter().zip(plan).enumerate() {
        let Outcome::Accepted(offset) = *o else { continue };
        out[i] = match &e.body {
            EventBody::LinkClick(c) => Some(match registered.get(&c.link) {
                // Credited to its link for the record, but a bot's or a prefetch's request
                // is no click a later order could be attributed to.
                Some(link) if !c.counted() => credited(AttributionStatus::Click, link, 0),
                Some(link) => {
                    let click = Click {
                        offset,
                        visitor_id: c.visitor_id.clone(),
                        link: c.link.clone(),
                        occurred_at: e.occurred_at,
                        attributable_until: e.occurred_at.saturating_add(window_micros(link)),
                    };
                    clicks.push(click.clone());
                    batch_clicks.entry(c.visitor_id.as_str()).or_default().push((click, link));
                    credited(AttributionStatus::Click, link, 0)
                }
                None => unattributed(&c.link),
            }),
            EventBody::PageSession(s) => s.link.as_ref().map(|l| match registered.get(l) {
                Some(link) => credited(AttributionStatus::Click, link, 0),
                None => unattributed(l),
            }),
            EventBody::Conversion(c) => {
                let stored = match &c.visitor_id {
                    Some(v) => links::last_click(txn, v, e.occurred_at).await?,
                    None => None,
                };
                let in_batch = c
                    .visitor_id
                    .as_deref()
                    .and_then(|v| batch_clicks.get(v))
                    .and_then(|cs| last_covering(cs.iter().map(|(c, l)| (c, *l)), e.occurred_at));
                let best = match (stored.as_ref().map(|(c, l)| (c, l)), in_batch) {
                    (Some(a), Some(b)) => {
                        Some(if (b.0.occurred_at, b.0.offset) > (a.0.occurred_at, a.0.offset) { b } else { a })
                    }
                    (a, b) => a.or(b),
                };
                Some(match (best, c.code.as_ref().and_then(|code| registered.get(code))) {
                    (Some((click, link)), _) => credited(AttributionStatus::Click, link, click.offset),
                    (None, Some(code)) => credited(AttributionStatus::CodeWithoutClick, code, 0),
                    (None, None) => unattributed(c.code.as_deref().unwrap_or_default()),
                })
            }
            _ => None,
        };
    }
    Ok((out, clicks))
}

/// The latest of `clicks` that happened at or before `at` and whose window covers it.
fn last_covering<'a>(clicks: impl Iterator<Item = (&'a Click, &'a Link)>, at: Micros) -> Option<(&'a Click, &'a Link)> {
    clicks
        .filter(|(c, _)| c.occurred_at <= at && c.attributable_until >= at)
        .max_by_key(|(c, _)| (c.occurred_at, c.offset))
}

fn window_micros(link: &Link) -> Micros {
    i64::try_from(link.attribution_window_secs).unwrap_or(i64::MAX).saturating_mul(1_000_000)
}

fn credited(status: AttributionStatus, link: &Link, click_offset: u64) -> Attribution {
    Attribution {
        status,
        link: link.link.clone(),
        owner: Some(link.owner.clone()),
        campaign_id: link.campaign_id.clone(),
        click_offset,
    }
}

fn unattributed(link: &str) -> Attribution {
    Attribution {
        status: AttributionStatus::Unattributed,
        link: link.to_owned(),
        owner: None,
        campaign_id: String::new(),
        click_offset: 0,
    }
}

#[cfg(test)]
mod tests {
    use lift_domain::AccountId;

    use super::*;

    fn click(offset: u64, at: Micros, until: Micros) -> Click {
        Click { offset, visitor_id: "v".into(), link: "L".into(), occurred_at: at, attributable_until: until }
    }

    /// Pins the last-click rule: latest click at or before the conversion whose
    /// window covers it; ties in time go to the later offset.
    #[test]
    fn last_covering_picks_latest_eligible_click() {
        let link = Link {
            link: "L".into(),
            owner: AccountId::new("x", "a"),
            campaign_id: String::new(),
            attribution_window_secs: 1,
            landing_url: String::new(),
        };
        let cs = [click(1, 10, 100), click(2, 20, 25), click(3, 20, 100), click(4, 60, 100)];
        let pick = |at| last_covering(cs.iter().map(|c| (c, &link)), at).map(|(c, _)| c.offset);
        assert_eq!(pick(50), Some(3));
        assert_eq!(pick(5), None);
        assert_eq!(pick(70), Some(4));
        assert_eq!(pick(101), None);
    }
}
