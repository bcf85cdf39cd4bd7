//! A creator's page: their five dimensions with intervals and percentiles, each
//! dimension's history with every change marked, why each change happened (value
//! and percentile, in sentences whose amounts sum exactly to the change shown),
//! gaming flags with their evidence and what would clear them, and the action
//! evidence behind the *action* score. Needs a key that may read the account
//! (`creator:read` bound to it, or `scores:read`); scoring refuses any other.

use axum::extract::{Path, Query};
use axum::response::{Html, IntoResponse, Redirect, Response};
use lift_domain::Dimension;
use lift_proto::convert::prelude::*;
use lift_proto::ingest::v1::AccountRef;
use lift_proto::scoring::v1 as spb;
use maud::{Markup, html};
use serde::Deserialize;

use crate::chart::{self, Point};
use crate::layout::{PageError, encode, num, page, signed, when};
use crate::session::Visitor;

/// Changes explained per page (most recent first).
const MAX_EXPLAINED: usize = 4;
/// Runs read for the history chart.
const HISTORY_RUNS: u32 = 60;
/// A value change smaller than this is not a change worth a mark.
const MIN_CHANGE: f64 = 0.005;

#[derive(Debug, Deserialize)]
pub struct Lookup {
    #[serde(default)]
    network: String,
    #[serde(default)]
    id: String,
}

/// `/creator`: which account to show.
pub async fn lookup(_v: Visitor, Query(q): Query<Lookup>) -> Response {
    let (n, i) = (q.network.trim(), q.id.trim());
    if !n.is_empty() && !i.is_empty() {
        return Redirect::to(&format!("/creator/{}/{}", encode(n), encode(i))).into_response();
    }
    Html(
        page(
            "Creator",
            true,
            html! {
                h1 { "Creator page" }
                p { "Which account? A creator key shows only the accounts it was issued for." }
                form method="get" action="/creator" {
                    label for="network" { "Network" }
                    input #network type="text" name="network" required placeholder="e.g. collegemsg";
                    label for="id" { "Account id" }
                    input #id type="text" name="id" required;
                    p { button type="submit" { "Show" } }
                }
            },
        )
        .into_string(),
    )
    .into_response()
}

#[derive(Debug, Deserialize)]
pub struct Which {
    #[serde(default)]
    dim: Option<String>,
}

fn overall(scores: &[spb::Score], d: Dimension) -> Option<&spb::Score> {
    scores.iter().find(|s| s.dimension == d.to_proto() as i32 && s.topic.is_empty())
}

fn insufficient(s: &spb::Score) -> bool {
    s.evidence == spb::Evidence::Insufficient as i32
}

fn title_case(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// `/creator/{network}/{id}`.
pub async fn show(
    v: Visitor,
    Path((network, id)): Path<(String, String)>,
    Query(w): Query<Which>,
) -> Result<Html<String>, PageError> {
    let account = AccountRef { network: network.clone(), id: id.clone() };
    let mut scoring = v.scoring()?;
    let scores = scoring.get_scores(spb::GetScoresRequest { accounts: vec![account.clone()] }).await?.into_inner();
    let Some(me) = scores.accounts.into_iter().next() else {
        let body = html! {
            h1 { (network) ":" (id) }
            p.nodata { "No data: this account has no scores yet. It gets them once its events are on the ledger and scoring has run." }
        };
        return Ok(Html(page(&format!("{network}:{id}"), true, body).into_string()));
    };
    let mut history = scoring
        .get_score_history(spb::GetScoreHistoryRequest {
            account: Some(account.clone()),
            dimensions: vec![],
            limit: HISTORY_RUNS,
            ..Default::default()
        })
        .await?
        .into_inner()
        .points;
    history.sort_by_key(|p| p.run_id);
    let dim = w
        .dim
        .as_deref()
        .and_then(Dimension::parse)
        .or_else(|| most_recently_changed(&history))
        .unwrap_or(Dimension::Activity);
    let changes = changes(&history, dim);
    let mut explained = Vec::new();
    for (from, to) in changes.iter().rev().take(MAX_EXPLAINED) {
        let r = scoring
            .explain_score_change(spb::ExplainScoreChangeRequest {
                account: Some(account.clone()),
                dimension: dim.to_proto() as i32,
                from_run_id: history[*from].run_id,
                to_run_id: history[*to].run_id,
            })
            .await?
            .into_inner();
        explained.push((*from, *to, r));
    }
    let label = crate::layout::account_label(me.account.as_ref(), &me.handle);
    let body = html! {
        h1 { "Creator: " (label) }
        p.muted { "Model " (me.model_version) ", as of ledger offset " (me.as_of_offset) " (" (when(me.as_of_time.as_ref())) "). "
                  "Five separate scores, each 0–100; a percentile is the share of scored accounts at or below your value (a value of 0, nothing observed, is p0)." }
        (dimensions_table(&me.scores))
        (history_section(&network, &id, &history, dim, &changes, &explained))
        (flags_section(&me.flags))
        (action_section(&me.scores))
    };
    Ok(Html(page(&label, true, body).into_string()))
}

fn dimensions_table(scores: &[spb::Score]) -> Markup {
    html! {
        h2 { "Your five dimensions" }
        table {
            caption.muted { "Value with its 90 % credible interval, and where it places you among scored accounts" }
            thead { tr { th scope="col" { "Dimension" } th scope="col" { "Value" } th scope="col" { "90 % interval" } th scope="col" { "Percentile" } th scope="col" { "Evidence" } } }
            tbody {
                @for d in Dimension::ALL {
                    tr data-dimension=(d.name()) {
                        th scope="row" { (title_case(d.name())) }
                        @match overall(scores, d) {
                            None => { td.nodata colspan="4" { "no data" } }
                            Some(s) if insufficient(s) => {
                                td.nodata { "no evidence" }
                                td.num { @if s.upper > s.lower { "could be " (num(s.lower, 1)) "–" (num(s.upper, 1)) } @else { "—" } }
                                td.nodata { "not ranked" }
                                td { "insufficient: too few observations to say" }
                            }
                            Some(s) => {
                                td.num data-value=(format!("{:.4}", s.value)) { (num(s.value, 1)) }
                                td.num { @if s.upper > s.lower { (num(s.lower, 1)) "–" (num(s.upper, 1)) } @else { "no interval for this dimension" } }
                                td.num { "p" (num(s.percentile, 1)) }
                                td { "sufficient" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The dimension whose value changed in the latest pair of runs by the most.
fn most_recently_changed(history: &[spb::HistoryPoint]) -> Option<Dimension> {
    let [.., a, b] = history else { return None };
    Dimension::ALL
        .into_iter()
        .filter_map(|d| {
            let (x, y) = (overall(&a.scores, d)?, overall(&b.scores, d)?);
            let delta = (y.value - x.value).abs();
            (delta >= MIN_CHANGE).then_some((d, delta))
        })
        .max_by(|p, q| p.1.total_cmp(&q.1))
        .map(|(d, _)| d)
}

/// Pairs of history indices (previous, next) between which `d`'s value changed.
fn changes(history: &[spb::HistoryPoint], d: Dimension) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut last: Option<(usize, f64)> = None;
    for (i, p) in history.iter().enumerate() {
        let Some(s) = overall(&p.scores, d) else { continue };
        if let Some((j, v)) = last
            && (s.value - v).abs() >= MIN_CHANGE
        {
            out.push((j, i));
        }
        last = Some((i, s.value));
    }
    out
}

fn contribution_lead(kind: i32) -> &'static str {
    match spb::ContributionKind::try_from(kind) {
        Ok(spb::ContributionKind::NewEvents) => "New activity",
        Ok(spb::ContributionKind::AgedOut) => "Older activity leaving the scoring window",
        Ok(spb::ContributionKind::Authenticity) => "Authenticity",
        Ok(spb::ContributionKind::Recalibration) => "A new model version (recalibration)",
        Ok(spb::ContributionKind::Erasure) => {
            "Data removed (another person's erasure request, or the retention period)"
        }
        _ => "Other",
    }
}

fn percentile_lead(cause: i32) -> &'static str {
    match spb::PercentileCause::try_from(cause) {
        Ok(spb::PercentileCause::OwnValue) => "Your own value moving",
        Ok(spb::PercentileCause::Population) => "Other accounts moving",
        Ok(spb::PercentileCause::Authenticity) => "Authenticity reclassification",
        Ok(spb::PercentileCause::Recalibration) => "A new model version (recalibration)",
        Ok(spb::PercentileCause::Erasure) => "Data removed (another person's erasure request, or the retention period)",
        _ => "Other",
    }
}

fn history_section(
    network: &str,
    id: &str,
    history: &[spb::HistoryPoint],
    dim: Dimension,
    changes: &[(usize, usize)],
    explained: &[(usize, usize, spb::ExplainScoreChangeResponse)],
) -> Markup {
    let points: Vec<Point> = history
        .iter()
        .filter_map(|p| {
            let s = overall(&p.scores, dim)?;
            Some(Point {
                label: format!("run {}", p.run_id),
                value: s.value,
                interval: (s.upper > s.lower).then_some((s.lower, s.upper)),
            })
        })
        .collect();
    // Mark numbers count from the oldest change shown.
    let index_of = |hist_i: usize| history[..hist_i].iter().filter(|p| overall(&p.scores, dim).is_some()).count();
    let marks: Vec<(usize, String)> =
        changes.iter().enumerate().map(|(n, (_, to))| (index_of(*to), (n + 1).to_string())).collect();
    html! {
        h2 { "History" }
        nav aria-label="Dimension" {
            "Show: "
            @for d in Dimension::ALL {
                @if d == dim { strong { (title_case(d.name())) } " " }
                @else { a href={"/creator/" (encode(network)) "/" (encode(id)) "?dim=" (d.name())} { (title_case(d.name())) } " " }
            }
        }
        @if points.is_empty() {
            p.nodata { "No data: no scoring run has scored " (dim.name()) " for this account." }
        } @else {
            (chart::history(&format!("{} over scoring runs", title_case(dim.name())), &points, &marks))
        }
        h2 { "Why did " (dim.name()) " change?" }
        @if changes.is_empty() {
            p { "It has not changed in the runs shown." }
        }
        @for (from, to, r) in explained {
            @let n = changes.iter().position(|c| c == &(*from, *to)).map_or(0, |p| p + 1);
            (explanation(n, &history[*from], &history[*to], dim, r))
        }
        @if changes.len() > explained.len() {
            p.muted { (changes.len() - explained.len()) " earlier change(s) are marked on the chart but not explained here." }
        }
    }
}

fn explanation(
    n: usize,
    from: &spb::HistoryPoint,
    to: &spb::HistoryPoint,
    dim: Dimension,
    r: &spb::ExplainScoreChangeResponse,
) -> Markup {
    let change = r.to_value - r.from_value;
    let (p0, p1) = (overall(&from.scores, dim).map(|s| s.percentile), overall(&to.scores, dim).map(|s| s.percentile));
    html! {
        section.change data-change=(format!("{change:.6}")) aria-labelledby={"change-" (n)} {
            h3 #{"change-" (n)} { "Change " (n) ": " (num(r.from_value, 2)) " → " (num(r.to_value, 2)) " (" (signed(change, 2)) "), run " (from.run_id) " → run " (to.run_id) }
            @if r.from_model_version != r.to_model_version {
                p.muted { "Model " (r.from_model_version) " → " (r.to_model_version) "." }
            }
            h4 { "The value" }
            ul {
                @for c in &r.contributions {
                    li.contribution data-delta=(format!("{:.6}", c.delta)) {
                        strong { (contribution_lead(c.kind)) " " (signed(c.delta, 2)) } ": " (c.description)
                        @if c.event_count > 0 { " (" (c.event_count) " event" @if c.event_count != 1 { "s" } ")" }
                    }
                }
            }
            p { "Together: " strong { (signed(r.contributions.iter().map(|c| c.delta).sum::<f64>(), 2)) } ", the change shown above." }
            h4 { "The percentile" }
            @match (p0, p1) {
                (Some(_), Some(_)) => {
                    @let total = r.to_percentile - r.from_percentile;
                    @if r.percentile_contributions.is_empty() {
                        p data-pct-change=(format!("{total:.6}")) { "p" (num(r.from_percentile, 1)) " → p" (num(r.to_percentile, 1)) ": unchanged." }
                    } @else {
                        ul {
                            @for c in &r.percentile_contributions {
                                li.pct data-delta=(format!("{:.6}", c.delta)) { strong { (percentile_lead(c.cause)) " " (signed(c.delta, 1)) " points" } ": " (c.description) "." }
                            }
                        }
                        p data-pct-change=(format!("{total:.6}")) { "Together: p" (num(r.from_percentile, 1)) " → p" (num(r.to_percentile, 1)) " (" (signed(total, 1)) " points)." }
                    }
                }
                _ => { p.nodata { "No data: a percentile is missing for one of the two runs (no evidence then)." } }
            }
        }
    }
}

fn clears(kind: &str) -> &'static str {
    match kind {
        "engagement_pod" | "reciprocity_ring" => {
            "Engagement that mostly comes from the same few accounts within minutes of posting reads as a pod. It clears as those events leave the scoring window and engagement comes from a wider audience."
        }
        "follow_churn" => {
            "Following and soon unfollowing many accounts reads as follow-for-follow. It clears when those follow/unfollow events leave the scoring window and no new ones appear."
        }
        "follower_burst" | "engagement_burst" => {
            "One day far above your usual. A genuinely viral post does this too, so the flag is capped low; it clears when that day leaves the scoring window."
        }
        "young_engagers" => {
            "Much of your engagement comes from very new or flagged accounts — possibly bought by someone else. It clears as that share falls."
        }
        _ => "It clears when the events behind it leave the scoring window.",
    }
}

fn flags_section(flags: &[spb::GamingFlag]) -> Markup {
    html! {
        h2 { "Gaming flags" }
        @if flags.is_empty() {
            p { "None: no evidence of gaming in the scoring window." }
        }
        @for fl in flags {
            div.flag data-flag=(fl.kind) {
                p { strong { (fl.kind.replace('_', " ")) } " — severity " (num(fl.severity, 2)) " of 1 (authenticity is lowered by this share)." }
                p { (fl.description) }
                p { "Evidence: " (fl.event_offsets.len()) " event(s) on the ledger"
                    @if !fl.event_offsets.is_empty() {
                        " (offsets " (fl.event_offsets.iter().take(8).map(u64::to_string).collect::<Vec<_>>().join(", "))
                        @if fl.event_offsets.len() > 8 { ", …" } ")"
                    }
                    ", " (fl.accounts.len()) " account(s) involved"
                    @if !fl.accounts.is_empty() {
                        " (" (fl.accounts.iter().take(6).map(|a| format!("{}:{}", a.network, a.id)).collect::<Vec<_>>().join(", "))
                        @if fl.accounts.len() > 6 { ", …" } ")"
                    }
                    ", between " (when(fl.window_start.as_ref())) " and " (when(fl.window_end.as_ref())) "." }
                p { strong { "What would clear it: " } (clears(&fl.kind)) }
            }
        }
    }
}

fn action_section(scores: &[spb::Score]) -> Markup {
    let raw = |k: &str| overall(scores, Dimension::Action).and_then(|s| s.raw.get(k).copied());
    let rows = [
        ("Clicks on your tracking links", raw("clicks")),
        ("Page sessions", raw("sessions")),
        ("Engaged sessions (did not bounce)", raw("non_bounced")),
        ("Conversions", raw("conversions")),
    ];
    html! {
        h2 { "Action evidence" }
        @if rows.iter().all(|(_, v)| v.unwrap_or(0.0) == 0.0) {
            p.nodata { "No evidence: no clicks, sessions or conversions have been attributed to you yet, so your action score is not a number but \"no evidence\"." }
        }
        table {
            tbody {
                @for (name, v) in rows {
                    tr { th scope="row" { (name) } td.num { @match v { Some(v) => (num(v, 0)), None => span.nodata { "no data" } } } }
                }
            }
        }
    }
}
