//! A brand's pages (a `campaigns:write` key): its campaigns; one campaign's
//! eligibility, shortlist with the reason for every pass and fail, near misses,
//! portfolio with marginal gains (offers are in [`crate::offers`]); and the campaign's report with
//! lift against the holdout, its interval drawn — or "no data for lift".

use axum::extract::Path;
use axum::response::Html;
use lift_domain::Dimension;
use lift_proto::convert::prelude::*;
use lift_proto::matching::v1 as mpb;
use maud::{Markup, html};

use crate::chart;
use crate::layout::{PageError, account_label, encode, money, num, page, signed, when};
use crate::session::Visitor;

const SHORTLIST: u32 = 25;
const NEAR_MISS_MARGIN: f64 = 5.0;

fn state_name(s: i32) -> &'static str {
    match mpb::CampaignState::try_from(s) {
        Ok(mpb::CampaignState::Draft) => "draft (no offers yet)",
        Ok(mpb::CampaignState::Offered) => "offers issued",
        _ => "unknown",
    }
}

fn objective_name(o: i32) -> &'static str {
    match mpb::Objective::try_from(o) {
        Ok(mpb::Objective::Reach) => "reach",
        Ok(mpb::Objective::Engagement) => "engagement",
        Ok(mpb::Objective::Conversions) => "conversions",
        _ => "unspecified",
    }
}

/// A criterion in words, e.g. "activity ≥ p60" or "authenticity ≥ 50".
pub fn criterion_text(c: Option<&mpb::Criterion>) -> String {
    let Some(c) = c else { return "authenticity".into() };
    let name = Dimension::from_proto(c.dimension).map_or("unknown dimension", |d| d.name());
    let topic = if c.topic.is_empty() { String::new() } else { format!(" on {}", c.topic) };
    match c.threshold {
        Some(mpb::criterion::Threshold::MinPercentile(p)) => format!("{name}{topic} ≥ p{}", num(p, 0)),
        Some(mpb::criterion::Threshold::MinValue(v)) => format!("{name}{topic} ≥ {}", num(v, 1)),
        None => format!("{name}{topic}"),
    }
}

/// Why one criterion passed or failed, in words.
pub fn reason(r: &mpb::CriterionResult) -> String {
    let unit = match r.criterion.as_ref().and_then(|c| c.threshold) {
        Some(mpb::criterion::Threshold::MinPercentile(_)) => " percentile points",
        _ => " points",
    };
    let what = criterion_text(r.criterion.as_ref());
    if r.passed {
        format!("{what}: {} — passes by {}{unit}", num(r.observed, 1), num(r.margin, 1))
    } else if !r.reason.is_empty() {
        // Matching says why when the threshold alone does not (e.g. too little action evidence).
        format!("{what}: fails — {}", r.reason)
    } else if r.observed.is_nan() {
        format!("{what}: no evidence — fails")
    } else {
        format!("{what}: {} — fails, short by {}{unit}", num(r.observed, 1), num(-r.margin, 1))
    }
}

/// `/campaigns`.
pub async fn campaigns(v: Visitor) -> Result<Html<String>, PageError> {
    let list = v
        .matching()?
        .list_campaigns(mpb::ListCampaignsRequest { page_size: 100, page_token: String::new() })
        .await?
        .into_inner();
    let body = html! {
        h1 { "Campaigns" }
        @if list.campaigns.is_empty() {
            p.nodata { "No campaigns yet. Create one with CreateCampaign (see the README)." }
        } @else {
            table {
                thead { tr { th scope="col" { "Campaign" } th scope="col" { "Objective" } th scope="col" { "Budget" } th scope="col" { "State" } th scope="col" { "Created" } th scope="col" { "Offers and report" } } }
                tbody {
                    @for c in &list.campaigns {
                        @let spec = c.spec.clone().unwrap_or_default();
                        tr {
                            td { a href={"/campaigns/" (encode(&c.id))} { (spec.name) } br; span.muted { (c.id) } }
                            td { (objective_name(spec.objective)) }
                            td.num { (money(spec.budget, &spec.currency)) }
                            td { (state_name(c.state)) }
                            td { (when(c.created_at.as_ref())) }
                            td { @if c.state == mpb::CampaignState::Offered as i32 { a href={"/campaigns/" (encode(&c.id)) "/offers"} { "offers" } " · " a href={"/campaigns/" (encode(&c.id)) "/report"} { "report" } } @else { span.muted { "after offers" } } }
                        }
                    }
                }
            }
            @if !list.next_page_token.is_empty() { p.muted { "Only the first 100 campaigns are listed." } }
        }
    };
    Ok(Html(page("Campaigns", true, body).into_string()))
}

fn candidates_table(caption: &str, cs: &[mpb::Candidate]) -> Markup {
    html! {
        table {
            caption.muted { (caption) }
            thead { tr { th scope="col" { "#" } th scope="col" { "Creator" } th scope="col" { "Every criterion" } th scope="col" { "Expected" } } }
            tbody {
                @for c in cs {
                    tr {
                        td.num { (c.rank) }
                        td { (account_label(c.account.as_ref(), &c.handle)) }
                        td { ul {
                            @for r in &c.criteria {
                                li class=(if r.passed { "pass" } else { "fail" }) { (if r.passed { "✓ " } else { "✗ " }) (reason(r)) }
                            }
                        } }
                        td { @match &c.expected {
                            Some(e) if e.upper > e.lower => { (num(e.expected, 1)) " " (e.unit) br; span.muted { "90 %: " (num(e.lower, 1)) "–" (num(e.upper, 1)) } }
                            Some(e) => { (num(e.expected, 1)) " " (e.unit) }
                            None => { span.nodata { "no data" } }
                        } }
                    }
                }
            }
        }
    }
}

/// `/campaigns/{id}`.
pub async fn campaign(v: Visitor, Path(id): Path<String>) -> Result<Html<String>, PageError> {
    let mut m = v.matching()?;
    let c = m
        .get_campaign(mpb::GetCampaignRequest { campaign_id: id.clone() })
        .await?
        .into_inner()
        .campaign
        .unwrap_or_default();
    let spec = c.spec.clone().unwrap_or_default();
    let matched = m
        .match_campaign(mpb::MatchCampaignRequest {
            campaign_id: id.clone(),
            page_size: SHORTLIST,
            page_token: String::new(),
            near_miss_margin: NEAR_MISS_MARGIN,
        })
        .await?
        .into_inner();
    let draft = c.state == mpb::CampaignState::Draft as i32;
    let standing = crate::standing::status(&v, &id).await?;
    let portfolio = if draft && standing.is_none() {
        Some(
            m.select_portfolio(mpb::SelectPortfolioRequest { campaign_id: id.clone(), epsilon: 0.0 })
                .await?
                .into_inner(),
        )
    } else {
        None
    };
    let body = html! {
        h1 { "Campaign: " (spec.name) }
        p.muted { (c.id) " · " (state_name(c.state)) " · objective " (objective_name(spec.objective)) " · perk " (spec.perk) " at " (money(spec.unit_cost, &spec.currency)) " each, budget " (money(spec.budget, &spec.currency)) }
        h2 { "Eligibility" }
        p { "Criteria: " (spec.criteria.iter().map(|c| criterion_text(Some(c))).collect::<Vec<_>>().join("; "))
            "; authenticity ≥ " (num(spec.min_authenticity, 0))
            @if !spec.topics.is_empty() { "; topics: " (spec.topics.join(", ")) }
            ". Judged under model " (matched.model_version) " as of ledger offset " (matched.as_of_offset) "."
            @if matched.stale { strong { " These results are from an older scoring run while a newer one loads." } } }
        @if matched.funnel.is_empty() {
            p.nodata { "No funnel: matching judged a pre-filtered scan of scoring's accounts (it runs without its score cache), so it cannot count how many each criterion removes." }
            (chart::bars("Eligibility: near misses and eligible accounts", &outcome_rows(&matched), matched.total_eligible.max(matched.near_misses.len() as u64)))
        } @else {
            (chart::bars("Eligibility funnel: accounts still in after each criterion, in order", &funnel(&matched), funnel_max(&matched)))
            p.muted { (matched.near_misses.len()) " near misses fail exactly one criterion by " (num(NEAR_MISS_MARGIN, 0)) " points or less (listed below)." }
        }
        h2 { "Shortlist" }
        @if matched.eligible.is_empty() { p.nodata { "No account meets every criterion." } }
        @else { (candidates_table(&format!("The first {} of {} eligible creators, in the objective's order, with the reason for every pass", matched.eligible.len(), matched.total_eligible), &matched.eligible)) }
        h2 { "Near misses" }
        @if matched.near_misses.is_empty() { p { "None: no account fails exactly one criterion by " (num(NEAR_MISS_MARGIN, 0)) " points or less." } }
        @else { (candidates_table(&format!("Accounts failing exactly one criterion by at most {} points, closest first", num(NEAR_MISS_MARGIN, 0)), &matched.near_misses)) }
        @if let Some(sp) = &standing {
            h2 { "Standing perk program" }
            p { "Matching offers the perk by itself, once, to every creator who comes to meet the criteria on a scoring run "
                "(a random " (num(spec.holdout_share * 100.0, 0)) " % held out as controls); there is no portfolio to choose. So far: "
                (sp.offers) " perks offered, " (sp.controls) " held out, " (money(sp.spent, &spec.currency)) " spent of "
                (money(sp.budget, &spec.currency)) " (" (sp.status) ")." }
            p { a href={"/campaigns/" (encode(&c.id)) "/standing"} { "See the program" } ": every perk with the run that decided it and why, the control group, and model changes."
                @if !draft { " " a href={"/campaigns/" (encode(&c.id)) "/report"} { "See the report" } " for outcomes and lift against the control group." } }
        } @else {
        h2 { "Portfolio" }
        @match &portfolio {
            Some(p) => { (portfolio_section(p, &spec.currency)) }
            None => { p { "Offers have been issued, so the portfolio is fixed; the offers page lists who received one." } }
        }
        h2 { "Offers" }
        @if draft {
            p { "Issuing offers gives each portfolio creator a tracking link and a code, and holds out a random "
                (num(spec.holdout_share * 100.0, 0)) " % control group that gets nothing, so lift can be measured. This cannot be undone." }
            form method="post" action={"/campaigns/" (encode(&c.id)) "/offers"} { button type="submit" { "Issue offers" } }
        } @else {
            p { a href={"/campaigns/" (encode(&c.id)) "/offers"} { "See the offers" } ": each creator's link, code and the offer's state, and the control group. "
                a href={"/campaigns/" (encode(&c.id)) "/report"} { "See the report" } " for outcomes and lift against the control group." }
        }
        }
    };
    Ok(Html(page(&spec.name, true, body).into_string()))
}

/// Without a funnel: eligible, and near misses (one criterion short).
fn outcome_rows(m: &mpb::MatchCampaignResponse) -> Vec<(String, u64)> {
    vec![
        (format!("fail one criterion by ≤ {}", num(NEAR_MISS_MARGIN, 0)), m.near_misses.len() as u64),
        ("meet every criterion".into(), m.total_eligible),
    ]
}

/// Each funnel step as "after <step>: n", in the order matching applied them.
fn funnel(m: &mpb::MatchCampaignResponse) -> Vec<(String, u64)> {
    m.funnel
        .iter()
        .map(|s| {
            let label = match s.step.as_str() {
                "scored" => "every scored account".to_owned(),
                "criterion" => format!("+ {}", criterion_text(s.criterion.as_ref())),
                "topics" => "+ scored in the campaign's topics".to_owned(),
                "not excluded" => "+ not excluded by the brand".to_owned(),
                other => format!("+ {other}"),
            };
            (label, s.remaining)
        })
        .collect()
}

fn funnel_max(m: &mpb::MatchCampaignResponse) -> u64 {
    m.funnel.iter().map(|s| s.remaining).max().unwrap_or(0)
}

fn portfolio_section(p: &mpb::SelectPortfolioResponse, currency: &str) -> Markup {
    let max = p.members.iter().map(|m| m.marginal_gain.max(0.0).round() as u64).max().unwrap_or(0);
    html! {
        p { (p.members.len()) " creators, total " (money(p.total_cost, currency)) ", expected reach " (num(p.expected_reach, 1))
            " accounts (audience overlap " (num(p.audience_overlap, 1)) "). " span.muted { (p.guarantee) } }
        @if p.members.is_empty() { p.nodata { "No creator fits the budget." } }
        @else {
            (chart::bars("Marginal reach of each portfolio member, in the order chosen",
                &p.members.iter().map(|m| (account_label(m.account.as_ref(), &m.handle), m.marginal_gain.max(0.0).round() as u64)).collect::<Vec<_>>(), max))
            table {
                thead { tr { th scope="col" { "Creator" } th scope="col" { "Cost" } th scope="col" { "Marginal reach" } } }
                tbody { @for m in &p.members { tr { td { (account_label(m.account.as_ref(), &m.handle)) } td.num { (money(m.cost, currency)) } td.num { (num(m.marginal_gain, 1)) } } } }
            }
        }
    }
}

/// Days of outcomes the report page draws (the most recent).
const DAYS_SHOWN: usize = 60;

/// Whether a report's lift rests on data: matching gave no reason it could not be
/// estimated, both groups are present and the interval has width.
pub fn lift_has_data(l: &mpb::Lift) -> bool {
    l.unavailable_reason.is_empty()
        && l.treated > 0
        && l.holdout > 0
        && l.upper > l.lower
        && l.lower.is_finite()
        && l.upper.is_finite()
}

/// `/campaigns/{id}/report`.
pub async fn report(v: Visitor, Path(id): Path<String>) -> Result<Html<String>, PageError> {
    let r = v
        .matching()?
        .get_campaign_report(mpb::GetCampaignReportRequest { campaign_id: id.clone() })
        .await?
        .into_inner();
    let c = r.campaign.clone().unwrap_or_default();
    let spec = c.spec.clone().unwrap_or_default();
    let t = r.totals.unwrap_or_default();
    let cur = spec.currency.as_str();
    let mut creators = r.creators.clone();
    creators.sort_by_key(|c| std::cmp::Reverse(c.totals.as_ref().map_or(0, |t| t.conversions)));
    let outcome_rows = vec![
        ("clicks".to_owned(), t.clicks),
        ("unique visitors".to_owned(), t.unique_visitors),
        ("sessions".to_owned(), t.sessions),
        ("engaged sessions (no bounce)".to_owned(), (t.sessions as f64 * (1.0 - t.bounce_rate)).round() as u64),
        ("conversions".to_owned(), t.conversions),
    ];
    let max = outcome_rows.iter().map(|r| r.1).max().unwrap_or(0);
    let body = html! {
        h1 { "Report: " (spec.name) }
        p.muted { (c.id) " · outcomes attributed from the ledger up to offset " (r.as_of_offset) }
        h2 { "Outcomes" }
        @if t.clicks == 0 && t.conversions == 0 {
            p.nodata { "No data yet: no clicks or conversions have been attributed to this campaign." }
        } @else {
            (chart::bars("Outcomes so far", &outcome_rows, max))
            p { "Bounce rate " (num(t.bounce_rate * 100.0, 1)) " % · value " (money(t.value_minor, cur))
                " · cost per conversion " @if t.conversions == 0 { span.nodata { "no data (no conversions)" } } @else { (money(t.cost_per_conversion, cur)) }
                " · " (t.code_without_click) " conversions used a code without a click (a shared coupon)." }
        }
        h2 { "Outcomes over time" }
        @if r.daily.is_empty() {
            p.nodata { "No data yet: no outcome has a day to show." }
        } @else {
            @let shown = &r.daily[r.daily.len().saturating_sub(DAYS_SHOWN)..];
            @if shown.len() < r.daily.len() { p.muted { "The last " (DAYS_SHOWN) " days with outcomes; " (r.daily.len() - shown.len()) " earlier days are in the RPC's answer." } }
            (chart::bars("Clicks per day (UTC)", &shown.iter().map(|d| (d.date.clone(), d.clicks)).collect::<Vec<_>>(), shown.iter().map(|d| d.clicks).max().unwrap_or(0)))
            table #daily {
                caption { "Outcomes per UTC day of the event; days without any are left out" }
                thead { tr { th scope="col" { "Day" } th scope="col" { "Clicks" } th scope="col" { "Sessions" } th scope="col" { "Engaged" } th scope="col" { "Conversions" } } }
                tbody {
                    @for d in shown {
                        tr data-clicks=(d.clicks) { td { (d.date) } td { (d.clicks) } td { (d.sessions) } td { (d.sessions - d.bounced.min(d.sessions)) } td { (d.conversions) } }
                    }
                }
            }
        }
        h2 { "Lift against the control group" }
        @match &r.lift {
            Some(l) if lift_has_data(l) => {
                div #lift data-estimate=(format!("{:.6}", l.incremental_per_creator)) data-lower=(format!("{:.6}", l.lower)) data-upper=(format!("{:.6}", l.upper)) {
                    p { "Per creator who got an offer, " strong { (signed(l.incremental_per_creator, 3)) } " " (l.metric)
                        "; " (num(l.confidence * 100.0, 0)) " % interval "
                        strong { (num(l.lower, 3)) " to " (num(l.upper, 3)) } " (" (l.treated) " with offers vs " (l.holdout) " held out)." }
                    @if l.lower > 0.0 { p { "The whole interval is above zero: the offers made a difference." } }
                    @else if l.upper < 0.0 { p { "The whole interval is below zero: the offers did worse than nothing." } }
                    @else { p { "The interval includes zero: this data cannot tell the offers' effect from none." } }
                    (chart::interval("Lift per creator with its interval", l.incremental_per_creator, l.lower, l.upper, &l.metric))
                }
            }
            Some(l) => {
                p.nodata #lift data-nodata="true" { "No data for lift: "
                    @if !l.unavailable_reason.is_empty() { (l.unavailable_reason) " (" (l.treated) " with offers vs " (l.holdout) " held out)." }
                    @else if l.holdout == 0 { "there is no control group to compare with." }
                    @else if l.treated == 0 { "no creator with an offer is in the data." }
                    @else { "the outcomes do not vary, so there is no interval to draw (" (l.treated) " with offers vs " (l.holdout) " held out)." } }
            }
            None => { p.nodata #lift data-nodata="true" { "No data for lift: the report has no lift section." } }
        }
        h2 { "Per creator" }
        table {
            thead { tr { th scope="col" { "Creator" } th scope="col" { "Link" } th scope="col" { "Clicks" } th scope="col" { "Bounce" } th scope="col" { "Conversions" } th scope="col" { "Value" } } }
            tbody {
                @for cr in &creators {
                    @let ct = cr.totals.unwrap_or_default();
                    tr {
                        td { (account_label(cr.account.as_ref(), &cr.handle)) }
                        td { code { (cr.link) } }
                        td.num { (ct.clicks) }
                        td.num { @if ct.sessions == 0 { span.nodata { "no data" } } @else { (num(ct.bounce_rate * 100.0, 1)) " %" } }
                        td.num { (ct.conversions) }
                        td.num { (money(ct.value_minor, cur)) }
                    }
                }
            }
        }
    };
    Ok(Html(page(&format!("Report: {}", spec.name), true, body).into_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the reasons a brand reads: passes say by how much, fails say how short,
    /// and "no data for lift" replaces a zero-width interval.
    #[test]
    fn reasons_and_lift_read_plainly() {
        let crit = mpb::Criterion {
            dimension: 1,
            topic: String::new(),
            threshold: Some(mpb::criterion::Threshold::MinPercentile(60.0)),
        };
        let pass = mpb::CriterionResult {
            criterion: Some(crit.clone()),
            passed: true,
            margin: 12.0,
            observed: 72.0,
            ..Default::default()
        };
        assert_eq!(reason(&pass), "activity ≥ p60: 72.0 — passes by 12.0 percentile points");
        let fail = mpb::CriterionResult {
            criterion: Some(crit),
            passed: false,
            margin: -2.5,
            observed: 57.5,
            ..Default::default()
        };
        assert_eq!(reason(&fail), "activity ≥ p60: 57.5 — fails, short by 2.5 percentile points");
        let zero = mpb::Lift { treated: 5, holdout: 2, lower: 0.0, upper: 0.0, ..Default::default() };
        assert!(!lift_has_data(&zero));
        let real = mpb::Lift { treated: 5, holdout: 2, lower: -0.1, upper: 0.4, ..Default::default() };
        assert!(lift_has_data(&real));
        let unavailable = mpb::Lift { unavailable_reason: "no orders in either group".into(), ..real };
        assert!(!lift_has_data(&unavailable), "a lift matching calls unavailable is not drawn");
    }
}
