//! Steps 7–10 of the demo: the campaign's portfolio, its offers with a
//! control group, the simulated audience going through the link collector over
//! HTTP, and the report with lift.

use std::time::{Duration, Instant};

use anyhow::bail;
use lift_proto::{
    ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient},
    matching::v1::{self as mpb, matching_service_client::MatchingServiceClient},
};
use lift_runtime::client::Channel;

use super::outcomes::{audiences, campaign_outcomes};
use super::rpc::with_key;
use super::{Outlet, step};

/// True effect of an offer in the simulation: each audience member of a treated
/// creator orders with this extra probability (through the creator's link).
pub const TRUE_EFFECT: f64 = 0.08;
/// Baseline probability that an audience member orders anyway.
pub(super) const BASELINE: f64 = 0.03;

/// The shop side of the demo: the collector and the brand's webhook secret.
pub(super) struct Shop<'a> {
    pub(super) outlet: &'a Outlet,
    pub(super) brand_id: &'a str,
    pub(super) secret: &'a str,
}

/// Portfolio → offers with a holdout → simulated outcomes ingested → report with lift.
pub(super) async fn campaign_life(
    ingest: &mut IngestServiceClient<Channel>,
    matching: &mut MatchingServiceClient<Channel>,
    key: &str,
    campaign_id: &str,
    end: i64,
    shop: &Shop<'_>,
) -> anyhow::Result<mpb::GetCampaignReportResponse> {
    step(7, "Portfolio: the set of creators that maximises expected reach within the budget");
    let p = matching
        .select_portfolio(with_key(mpb::SelectPortfolioRequest { campaign_id: campaign_id.into(), epsilon: 0.2 }, key)?)
        .await?
        .into_inner();
    for m in &p.members {
        let id = m.account.as_ref().map(|r| format!("{}:{}", r.network, r.id)).unwrap_or_default();
        println!("    {id:<22} cost {:>6.2}  marginal reach {:>7.1}", m.cost as f64 / 100.0, m.marginal_gain);
    }
    println!(
        "    {} creators, cost {:.2} EUR, expected reach {:.1}, audience overlap {:.1}\n    guarantee: {}",
        p.members.len(),
        p.total_cost as f64 / 100.0,
        p.expected_reach,
        p.audience_overlap,
        p.guarantee
    );

    step(8, "Offers: a tracking link and code per creator, and a random holdout that gets nothing");
    let offers = matching
        .create_offers(with_key(mpb::CreateOffersRequest { campaign_id: campaign_id.into(), holdout_seed: 42 }, key)?)
        .await?
        .into_inner();
    let treated: Vec<&mpb::Offer> = offers.offers.iter().filter(|o| !o.holdout).collect();
    println!(
        "    {} offers issued; control group: {} portfolio creators held out (seed {}, recorded); e.g. {} / code {}",
        treated.len(),
        offers.control_group.len(),
        offers.holdout_seed,
        treated.first().map_or("", |o| o.link.as_str()),
        treated.first().map_or("", |o| o.code.as_str()),
    );

    step(9, "Simulating the campaign: audiences click, bounce or stay, and order");
    let audiences = audiences(ingest).await?;
    let events = campaign_outcomes(&offers.offers, &audiences, end);
    let head = ingest.get_ledger_info(ipb::GetLedgerInfoRequest {}).await?.into_inner().head_offset;
    // The collector stamps what it records with its clock; shifted so the campaign happens an
    // hour after the dataset ends, as the rest of the story's timeline does.
    let now_secs = lift_domain::time::now() / 1_000_000;
    shop.outlet.collector.set_clock_shift(end + 3_600 - now_secs);
    let sent = crate::links::replay_over_http(shop.outlet.addr, "lift.to", shop.brand_id, shop.secret, &events).await?;
    // Clicks, beacons and orders go through the collector's spool; bounces are decided after
    // the idle time. Wait until the ledger holds one event per request.
    let deadline = Instant::now() + Duration::from_secs(60);
    let acc = loop {
        let now = ingest.get_ledger_info(ipb::GetLedgerInfoRequest {}).await?.into_inner().head_offset - head;
        if now >= sent.events() && shop.outlet.collector.pending() == 0 {
            break now;
        }
        if Instant::now() > deadline {
            bail!("{now} of {} outcome events reached the ledger within 60 s", sent.events());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "    {} link clicks, {} beacon sessions and {} signed order webhooks sent to the collector over HTTP; {acc} events on the ledger\n    true effect: +{:.0}% order probability per audience member of a treated creator",
        sent.clicks,
        sent.sessions,
        sent.orders,
        TRUE_EFFECT * 100.0
    );

    step(10, "Campaign report from attributed outcomes on the ledger");
    let r = matching
        .get_campaign_report(with_key(mpb::GetCampaignReportRequest { campaign_id: campaign_id.into() }, key)?)
        .await?
        .into_inner();
    if let Some(t) = &r.totals {
        println!(
            "    clicks {}  unique visitors {}  bounce rate {:.1}%  conversions {}  value {:.2} EUR  cost/conversion {:.2} EUR  coupon leaks {}",
            t.clicks,
            t.unique_visitors,
            t.bounce_rate * 100.0,
            t.conversions,
            t.value_minor as f64 / 100.0,
            t.cost_per_conversion as f64 / 100.0,
            t.code_without_click
        );
    }
    let mut creators = r.creators.clone();
    creators.sort_by_key(|c| std::cmp::Reverse(c.totals.as_ref().map_or(0, |t| t.conversions)));
    for c in creators.iter().take(5) {
        let id = c.account.as_ref().map(|r| format!("{}:{}", r.network, r.id)).unwrap_or_default();
        if let Some(t) = &c.totals {
            println!(
                "      {id:<22} clicks {:>4}  bounce {:>5.1}%  conversions {:>3}  value {:>8.2}",
                t.clicks,
                t.bounce_rate * 100.0,
                t.conversions,
                t.value_minor as f64 / 100.0
            );
        }
    }
    if let Some(l) = r.lift.as_ref().filter(|l| !l.unavailable_reason.is_empty()) {
        println!(
            "    incremental lift per creator: not measurable yet — {} ({} treated vs {} in the control group)\n    metric: {}",
            l.unavailable_reason, l.treated, l.holdout, l.metric
        );
    } else if let Some(l) = &r.lift {
        println!(
            "    incremental lift per creator: {:+.2}, {:.0}% interval [{:.2}, {:.2}] ({} treated vs {} held out)\n    metric: {}",
            l.incremental_per_creator,
            l.confidence * 100.0,
            l.lower,
            l.upper,
            l.treated,
            l.holdout,
            l.metric,
        );
    }
    Ok(r)
}
