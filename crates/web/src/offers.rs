//! A campaign's offers (a `campaigns:write` key), read back with `ListOffers`
//! whenever the brand comes to look: each creator's tracking link and code,
//! where the offer stands in its life (offered, accepted, declined, expired,
//! delivered, redeemed), and the control group as its own list.
//!
//! Issuing offers (`POST /campaigns/{id}/offers`) calls `CreateOffers` and then
//! sends the browser here, so what a brand sees right after issuing is the same
//! page it can come back to.

use axum::extract::{Path, Query};
use axum::response::{Html, Redirect};
use lift_domain::offer::OfferState;
use lift_proto::convert::prelude::*;
use lift_proto::matching::v1 as mpb;
use maud::{Markup, html};
use serde::Deserialize;

use crate::layout::{PageError, account_label, encode, money, page};
use crate::session::Visitor;

/// Offers asked for per `ListOffers` call.
const PAGE: u32 = 1_000;
/// Most offers one page shows (a campaign's portfolio is far smaller).
const MAX_SHOWN: usize = 10_000;

/// `?issued=1` right after `CreateOffers`.
#[derive(Debug, Default, Deserialize)]
pub struct OffersQuery {
    #[serde(default)]
    pub issued: Option<u8>,
}

/// A campaign's offers split the way a brand reads them.
#[derive(Debug, Default)]
pub struct Offers {
    /// Creators who got an offer: a link and a code each.
    pub offered: Vec<mpb::Offer>,
    /// Portfolio creators held out at random: the control group lift is measured against.
    pub control: Vec<mpb::Offer>,
    /// Eligible creators outside the portfolio, held out as well (not the control group).
    pub outside: Vec<mpb::Offer>,
    /// More offers exist than the page shows.
    pub truncated: bool,
}

impl Offers {
    pub fn split(all: Vec<mpb::Offer>, truncated: bool) -> Self {
        let mut o = Offers { truncated, ..Default::default() };
        for offer in all {
            match (offer.holdout, offer.in_portfolio) {
                (false, _) => o.offered.push(offer),
                (true, true) => o.control.push(offer),
                (true, false) => o.outside.push(offer),
            }
        }
        o
    }

    pub fn is_empty(&self) -> bool {
        self.offered.is_empty() && self.control.is_empty() && self.outside.is_empty()
    }
}

/// An offer's state in words, e.g. "accepted".
pub fn state_text(code: i32) -> &'static str {
    OfferState::from_code(code).map_or("unknown state", OfferState::name)
}

/// What may happen next to an offer in state `code`, in words.
pub fn next_text(code: i32) -> String {
    let Some(s) = OfferState::from_code(code) else { return String::new() };
    let next: Vec<&str> = s.next().into_iter().map(OfferState::name).collect();
    match next.as_slice() {
        [] => "final".to_owned(),
        [one] => format!("next: {one}"),
        [init @ .., last] => format!("next: {} or {last}", init.join(", ")),
    }
}

/// Every offer of the campaign, paged through `ListOffers` (up to [`MAX_SHOWN`]).
async fn list_all(v: &Visitor, campaign_id: &str) -> Result<(Vec<mpb::Offer>, bool), PageError> {
    let mut m = v.matching()?;
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let r = m
            .list_offers(mpb::ListOffersRequest {
                campaign_id: campaign_id.to_owned(),
                page_size: PAGE,
                page_token: token.clone(),
            })
            .await?
            .into_inner();
        out.extend(r.offers);
        if r.next_page_token.is_empty() {
            return Ok((out, false));
        }
        if out.len() >= MAX_SHOWN {
            out.truncate(MAX_SHOWN);
            return Ok((out, true));
        }
        token = r.next_page_token;
    }
}

/// `GET /campaigns/{id}/offers`.
pub async fn show(v: Visitor, Path(id): Path<String>, Query(q): Query<OffersQuery>) -> Result<Html<String>, PageError> {
    let c = v
        .matching()?
        .get_campaign(mpb::GetCampaignRequest { campaign_id: id.clone() })
        .await?
        .into_inner()
        .campaign
        .unwrap_or_default();
    let (all, truncated) = list_all(&v, &id).await?;
    let offers = Offers::split(all, truncated);
    let spec = c.spec.clone().unwrap_or_default();
    let body = offers_body(&c, &offers, q.issued.is_some());
    Ok(Html(page(&format!("Offers: {}", spec.name), true, body).into_string()))
}

/// `POST /campaigns/{id}/offers`: issues the offers, then shows them (read back with `ListOffers`).
pub async fn issue(v: Visitor, Path(id): Path<String>) -> Result<Redirect, PageError> {
    v.matching()?.create_offers(mpb::CreateOffersRequest { campaign_id: id.clone(), holdout_seed: 0 }).await?;
    Ok(Redirect::to(&format!("/campaigns/{}/offers?issued=1", encode(&id))))
}

/// The offers page's body for campaign `c`.
pub fn offers_body(c: &mpb::Campaign, o: &Offers, just_issued: bool) -> Markup {
    let spec = c.spec.clone().unwrap_or_default();
    let cur = spec.currency.as_str();
    let campaign_href = format!("/campaigns/{}", encode(&c.id));
    let counts: Vec<(OfferState, usize)> = OfferState::ALL
        .into_iter()
        .map(|s| (s, o.offered.iter().filter(|x| x.state == s.to_proto() as i32).count()))
        .collect();
    html! {
        h1 { "Offers: " (spec.name) }
        p.muted { (c.id) " · " a href=(campaign_href) { "back to the campaign" } }
        @if just_issued {
            p.note role="status" { "Offers issued. They are read back below, and this page shows them again whenever you return." }
        }
        @if o.is_empty() {
            p.nodata #no-offers { "No offers issued yet." }
            @if c.state == mpb::CampaignState::Draft as i32 {
                p { "Issue them from " a href=(campaign_href) { "the campaign's page" } ", after checking its portfolio." }
            }
        } @else {
            p { (o.offered.len()) " creators got an offer; " (o.control.len()) " portfolio creators are in the control group"
                @if !o.outside.is_empty() { "; " (o.outside.len()) " eligible creators outside the portfolio were held out as well" }
                ". " a href={(campaign_href) "/report"} { "See the report" } " for outcomes and lift." }
            @if o.truncated { p.note { "Only the first " (MAX_SHOWN) " offers are shown; ListOffers pages through the rest." } }
            h2 { "Where the offers stand" }
            @if o.offered.is_empty() {
                p.nodata { "No creator got an offer: every creator was held out." }
            } @else {
                table #offer-states {
                    caption.muted { "Offers in each state of their life, as the brand has reported them with TransitionOffer" }
                    thead { tr { th scope="col" { "State" } th scope="col" { "Offers" } } }
                    tbody { @for (s, n) in &counts { tr { th scope="row" { (s.name()) } td.num { (n) } } } }
                }
            }
            h2 { "Offers" }
            @if !o.offered.is_empty() {
                table #offers {
                    caption.muted { "Each creator's tracking link and discount code, and the offer's state" }
                    thead { tr { th scope="col" { "Creator" } th scope="col" { "Tracking link" } th scope="col" { "Code" } th scope="col" { "State" } th scope="col" { "Cost" } } }
                    tbody {
                        @for x in &o.offered {
                            tr data-link=(x.link) data-code=(x.code) data-state=(state_text(x.state)) {
                                td { (account_label(x.account.as_ref(), &x.handle)) }
                                td { code { (x.link) } }
                                td { code { (x.code) } }
                                td { strong { (state_text(x.state)) } br; span.muted { (next_text(x.state))
                                    @if x.state_offset > 0 { " · ledger offset " (x.state_offset) }
                                    @else if x.state != OfferState::Offered.to_proto() as i32 { " · not yet on the ledger" } } }
                                td.num { (money(x.cost, cur)) }
                            }
                        }
                    }
                }
            } @else {
                p.nodata { "None." }
            }
            h2 { "Control group" }
            p { "Portfolio creators held out at random: they get no offer, link or code, and the campaign's lift is measured against them." }
            @if o.control.is_empty() {
                p.nodata #no-control-group { "No control group: without one, lift cannot be measured." }
            } @else {
                ul #control-group {
                    @for x in &o.control {
                        @let a = x.account.clone().unwrap_or_default();
                        li data-account={(a.network) ":" (a.id)} { (account_label(x.account.as_ref(), &x.handle)) }
                    }
                }
            }
            @if !o.outside.is_empty() {
                h2 { "Held out outside the portfolio" }
                details {
                    summary { (o.outside.len()) " eligible creators the portfolio did not pick (no offer; not part of the control group)" }
                    ul #outside-portfolio { @for x in &o.outside { li { (account_label(x.account.as_ref(), &x.handle)) } } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use lift_proto::ingest::v1 as ipb;

    use super::*;

    fn offer(id: &str, holdout: bool, in_portfolio: bool, state: ipb::OfferState) -> mpb::Offer {
        mpb::Offer {
            account: Some(ipb::AccountRef { network: "n".into(), id: id.into() }),
            link: if holdout { String::new() } else { format!("lift.to/{id}") },
            code: if holdout { String::new() } else { format!("CODE-{id}") },
            holdout,
            state: state as i32,
            in_portfolio,
            cost: 4_500,
            ..Default::default()
        }
    }

    fn campaign() -> mpb::Campaign {
        mpb::Campaign {
            id: "c1".into(),
            state: mpb::CampaignState::Offered as i32,
            spec: Some(mpb::CampaignSpec { name: "Spring".into(), currency: "EUR".into(), ..Default::default() }),
            ..Default::default()
        }
    }

    /// Pins what the page says: every offer's link, code and state in words, the
    /// control group apart from creators merely outside the portfolio, and "no
    /// offers issued yet" rather than a count of zero.
    #[test]
    fn offers_page_lists_links_codes_states_and_the_control_group() {
        let o = Offers::split(
            vec![
                offer("a", false, true, ipb::OfferState::Offered),
                offer("b", false, true, ipb::OfferState::Delivered),
                offer("c", true, true, ipb::OfferState::Unspecified),
                offer("d", true, false, ipb::OfferState::Unspecified),
            ],
            false,
        );
        assert_eq!((o.offered.len(), o.control.len(), o.outside.len()), (2, 1, 1));
        let html = offers_body(&campaign(), &o, true).into_string();
        for s in ["lift.to/a", "CODE-a", "lift.to/b", "CODE-b", "delivered", "next: redeemed", "Offers issued."] {
            assert!(html.contains(s), "{s} missing from {html}");
        }
        assert!(html.contains(r#"<li data-account="n:c">n:c</li>"#), "control group: {html}");
        assert!(html.contains(r#"id="outside-portfolio""#) && html.contains("<li>n:d</li>"));
        assert!(!html.contains("No offers issued yet"));

        let none = offers_body(&campaign(), &Offers::default(), false).into_string();
        assert!(none.contains("No offers issued yet."));
        assert!(!none.contains("Control group") && !none.contains(">0<"), "no counts without offers: {none}");
    }

    #[test]
    fn states_read_as_words() {
        assert_eq!(state_text(ipb::OfferState::Accepted as i32), "accepted");
        assert_eq!(state_text(0), "unknown state");
        assert_eq!(next_text(ipb::OfferState::Offered as i32), "next: accepted, declined or expired");
        assert_eq!(next_text(ipb::OfferState::Redeemed as i32), "final");
    }
}
