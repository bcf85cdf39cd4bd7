//! A standing perk program's page (a `campaigns:write` key), read back with
//! `GetStandingProgram`: its books (status, offers and controls, spend against
//! the budget, the scoring runs it was evaluated on, and who qualified on the
//! last run but could not be paid for), every perk and control-group place with
//! the run it was decided on and why the creator qualified, and each model
//! change with its translated thresholds and the creators it moved out.

use axum::extract::Path;
use axum::response::Html;
use lift_domain::Dimension;
use lift_proto::convert::prelude::*;
use lift_proto::matching::v1 as mpb;
use maud::{Markup, html};
use tonic::Code;

use crate::brand::reason;
use crate::layout::{PageError, account_label, encode, money, num, page, when};
use crate::session::Visitor;

/// Perks asked for per `GetStandingProgram` call.
const PAGE: u32 = 1_000;
/// Most perks one page shows.
const MAX_SHOWN: usize = 10_000;

/// The program's status, or `None` when the campaign is not a standing program.
pub async fn status(v: &Visitor, id: &str) -> Result<Option<mpb::StandingProgramStatus>, PageError> {
    let req = mpb::GetStandingProgramRequest { campaign_id: id.to_owned(), page_size: 1, page_token: String::new() };
    match v.matching()?.get_standing_program(req).await {
        Ok(r) => Ok(Some(r.into_inner().program.unwrap_or_default())),
        Err(s) if s.code() == Code::FailedPrecondition => Ok(None),
        Err(s) => Err(s.into()),
    }
}

/// The program's status and every perk (up to `MAX_SHOWN`), or `None` when the
/// campaign is not a standing program.
pub async fn load(
    v: &Visitor,
    id: &str,
) -> Result<Option<(mpb::GetStandingProgramResponse, Vec<mpb::StandingPerk>, bool)>, PageError> {
    let mut m = v.matching()?;
    let mut perks = Vec::new();
    let mut token = String::new();
    let mut first: Option<mpb::GetStandingProgramResponse> = None;
    loop {
        let req = mpb::GetStandingProgramRequest { campaign_id: id.to_owned(), page_size: PAGE, page_token: token };
        let mut r = match m.get_standing_program(req).await {
            Ok(r) => r.into_inner(),
            // Matching's answer for a campaign that exists but is not standing.
            Err(s) if s.code() == Code::FailedPrecondition && first.is_none() => return Ok(None),
            Err(s) => return Err(s.into()),
        };
        perks.append(&mut r.perks);
        token = std::mem::take(&mut r.next_page_token);
        first.get_or_insert(r);
        if token.is_empty() || perks.len() >= MAX_SHOWN {
            break;
        }
    }
    let truncated = !token.is_empty();
    Ok(first.map(|f| (f, perks, truncated)))
}

/// `/campaigns/{id}/standing`.
pub async fn show(v: Visitor, Path(id): Path<String>) -> Result<Html<String>, PageError> {
    let c = v
        .matching()?
        .get_campaign(mpb::GetCampaignRequest { campaign_id: id.clone() })
        .await?
        .into_inner()
        .campaign
        .unwrap_or_default();
    let spec = c.spec.clone().unwrap_or_default();
    let Some((resp, perks, truncated)) = load(&v, &id).await? else {
        let body = html! {
            h1 { "Campaign: " (spec.name) }
            p.nodata { "This campaign is not a standing perk program: its offers are issued once, from its portfolio." }
            p { a href={"/campaigns/" (encode(&id))} { "Back to the campaign" } }
        };
        return Ok(Html(page(&spec.name, true, body).into_string()));
    };
    let p = resp.program.clone().unwrap_or_default();
    let cur = if p.currency.is_empty() { spec.currency.clone() } else { p.currency.clone() };
    let (given, held): (Vec<_>, Vec<_>) = perks.iter().partition(|k| !k.holdout);
    let body = html! {
        h1 { "Standing perk program: " (spec.name) }
        p.muted { (c.id) " · perk " (spec.perk) " · criteria: "
            (spec.criteria.iter().map(|c| crate::brand::criterion_text(Some(c))).collect::<Vec<_>>().join("; ")) }
        p { "Every creator who comes to meet the criteria gets the perk once, decided by matching on each scoring run; "
            (num(spec.holdout_share * 100.0, 0)) " % of them are held out at random as a control group and never offered it." }
        (books(&p, &cur))
        h2 { "Perks given (" (given.len()) ")" }
        @if given.is_empty() { p.nodata { "No perk given yet: no creator has met the criteria on a run evaluated so far." } }
        @else { (perk_table("Creators offered the perk, by account, with the run that decided it and why they qualified", &given, &cur)) }
        h2 { "Control group (" (held.len()) ")" }
        @if held.is_empty() { p.nodata { "Nobody held out yet." } }
        @else { (perk_table("Creators who qualified and were held out: nothing was offered and nothing ever will be", &held, &cur)) }
        @if truncated { p.muted { "Only the first " (MAX_SHOWN) " perks and places are shown." } }
        h2 { "Model changes" }
        @if resp.recalibrations.is_empty() { p { "None since the program started: every perk was decided under the same model." } }
        @else { @for r in &resp.recalibrations { (recalibration(r)) } }
        p { a href={"/campaigns/" (encode(&c.id))} { "Back to the campaign" } " · "
            a href={"/campaigns/" (encode(&c.id)) "/offers"} { "Offers and their states" } " · "
            a href={"/campaigns/" (encode(&c.id)) "/report"} { "Report" } }
    };
    Ok(Html(page(&spec.name, true, body).into_string()))
}

fn books(p: &mpb::StandingProgramStatus, cur: &str) -> Markup {
    let rules = p.rules.unwrap_or_default();
    html! {
        h2 { "The books" }
        table.books {
            tbody {
                tr { th scope="row" { "Status" } td { (p.status) } }
                tr { th scope="row" { "Perks offered" } td.num { (p.offers)
                    @if rules.max_offers > 0 { " of at most " (rules.max_offers) } } }
                tr { th scope="row" { "Held out as controls" } td.num { (p.controls) } }
                tr { th scope="row" { "Spent" } td.num { (money(p.spent, cur)) } }
                tr { th scope="row" { "Budget" } td.num { (money(p.budget, cur)) } }
                tr { th scope="row" { "Budget left" } td.num { (money(p.budget_left, cur)) } }
                tr { th scope="row" { "Opens" } td { @if rules.starts_at.is_some() { (when(rules.starts_at.as_ref())) } @else { "when started" } } }
                tr { th scope="row" { "Closes" } td { @if rules.ends_at.is_some() { (when(rules.ends_at.as_ref())) } @else { "never (until the budget or the cap is spent)" } } }
                tr { th scope="row" { "Scoring runs evaluated" } td.num { (p.runs_evaluated) } }
                tr { th scope="row" { "Last run evaluated" } td {
                    @if p.runs_evaluated == 0 { span.nodata { "none yet" } }
                    @else { "model " (p.last_model_version) ", ledger offset " (p.last_as_of_offset) } } }
                tr { th scope="row" { "Qualified on the last run but not paid for" } td.num {
                    @if p.runs_evaluated == 0 { span.nodata { "no run yet" } } @else { (p.unaffordable_last_run) } } }
            }
        }
    }
}

fn perk_table(caption: &str, perks: &[&mpb::StandingPerk], cur: &str) -> Markup {
    html! {
        table {
            caption.muted { (caption) }
            thead { tr { th scope="col" { "Creator" } th scope="col" { "Decided" } th scope="col" { "Why they qualified" } th scope="col" { "Cost" } th scope="col" { "Link and code" } } }
            tbody {
                @for k in perks {
                    tr {
                        td { (account_label(k.account.as_ref(), &k.handle)) }
                        td { (when(k.granted_at.as_ref())) br; span.muted { "model " (k.model_version) ", offset " (k.as_of_offset) } }
                        td { ul { @for r in &k.criteria {
                            li class=(if r.passed { "pass" } else { "fail" }) { (if r.passed { "✓ " } else { "✗ " }) (reason(r)) }
                        } } }
                        td.num { @if k.holdout { span.muted { "nothing (control)" } } @else { (money(k.cost, cur)) } }
                        td { @if k.link.is_empty() { span.muted { "none (control)" } } @else { code { (k.link) } br; code { (k.code) } } }
                    }
                }
            }
        }
    }
}

fn recalibration(r: &mpb::StandingRecalibration) -> Markup {
    html! {
        h3 { (r.from_version) " → " (r.to_version) }
        p.muted { "Recorded " (when(r.recorded_at.as_ref())) }
        @if r.thresholds.is_empty() {
            p { "No absolute threshold to translate: percentile bars mean the same under the new model." }
        } @else {
            table {
                caption.muted { "Absolute thresholds translated so the same creators qualify" }
                thead { tr { th scope="col" { "Dimension" } th scope="col" { "Old bar" } th scope="col" { "New bar" } } }
                tbody { @for t in &r.thresholds {
                    tr {
                        td { (Dimension::from_proto(t.dimension).map_or("unknown dimension", |d| d.name()))
                            @if !t.topic.is_empty() { " on " (t.topic) } }
                        td.num { (num(t.from_value, 1)) }
                        td.num { (num(t.to_value, 1)) }
                    }
                } }
            }
        }
        p { (r.entered) " creators newly qualify, " (r.stayed) " still qualify, " (r.left) " no longer qualify." }
        @if !r.left_accounts.is_empty() {
            p { "No longer qualifying: "
                (r.left_accounts.iter().map(|a| account_label(Some(a), "")).collect::<Vec<_>>().join(", "))
                @if (r.left_accounts.len() as u64) < r.left { " and " (r.left - r.left_accounts.len() as u64) " more" } "." }
        }
    }
}
