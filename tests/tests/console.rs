//! The web console in a real browser (headless Chromium over WebDriver), against
//! the demo's stack on a small generated network: signing in, a creator's page
//! and its explanations, a foreign creator refused, a brand's campaign pages and
//! report, issuing offers and reading them back, and the model page. Screenshots land in
//! `target/screenshots/console-*.png`.

use std::time::Duration;

use anyhow::{Context, ensure};
use lift_cli::demo::{DemoOptions, DemoSummary, start, with_key};
use lift_cli::stack::Stack;
use lift_domain::Dimension;
use lift_proto::ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient};
use lift_proto::matching::v1::{self as mpb, matching_service_client::MatchingServiceClient};
use lift_proto::scoring::v1::{self as spb, scoring_service_client::ScoringServiceClient};
use lift_tests::browser::{Browser, BrowserOptions};

/// Pins what a person checks on every page: the creator's explanations sum exactly
/// to the change shown (value and percentile), another creator's page is refused,
/// the key cookie is out of the page's reach, the campaign report's lift interval is
/// the RPC's, the offers page reads back the links, codes, states and control group
/// that CreateOffers and ListOffers answer, and the model page draws every published
/// distribution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pages_show_what_a_person_checks() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("lift-console-test-{}", std::process::id()));
    let opts = DemoOptions { generated: true, accounts: 300, dir: Some(dir.clone()), ..Default::default() };
    let (stack, summary) = start(&opts).await?;
    let result = match summary {
        Ok(s) => check(&stack, &s).await,
        Err(e) => Err(e),
    };
    stack.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// axe-core finds no serious or critical WCAG 2.1 A/AA violation on the page.
async fn accessible(b: &Browser, page: &str) -> anyhow::Result<()> {
    let found = b.accessibility_violations().await?;
    ensure!(found.is_empty(), "{page}: accessibility violations:\n{}", found.join("\n"));
    Ok(())
}

async fn sign_in(b: &Browser, key: &str) -> anyhow::Result<()> {
    b.find("#key").await?.send_keys(key).await?;
    b.click("main form button[type=submit]").await?;
    b.wait_for_url(|u| u.path() != "/login").await?;
    Ok(())
}

async fn check(stack: &Stack, s: &DemoSummary) -> anyhow::Result<()> {
    let (addr, creator_key) = s.console.clone().context("the demo printed no console keys")?;
    let creator = s.creator.clone().context("no creator on the shortlist")?;
    let (net, id) = creator.split_once(':').context("creator is network:id")?;
    let base = format!("http://{addr}");
    let b = Browser::start_with(BrowserOptions { window: (1280, 1500), ..Default::default() }).await?;

    // Not signed in: the creator page sends a person to the login form, then back.
    b.goto(&format!("{base}/creator/{net}/{id}")).await?;
    b.wait_for_url(|u| u.path() == "/login").await?;
    b.screenshot("console-login").await?;
    accessible(&b, "console-login").await?;
    sign_in(&b, &creator_key).await?;
    b.wait_for_url(|u| u.path() == format!("/creator/{net}/{id}")).await?;
    ensure!(b.text("h1").await?.contains(&creator), "creator page heading");
    let cookie = b.execute("return document.cookie;", vec![]).await?;
    ensure!(!cookie.as_str().unwrap_or_default().contains("lift_"), "the key cookie must be HttpOnly: {cookie}");
    let rows = b.execute("return document.querySelectorAll('tr[data-dimension]').length;", vec![]).await?;
    ensure!(rows.as_u64() == Some(5), "five dimensions, got {rows}");

    // Every explained change, on every dimension that has one: the amounts listed sum to the change.
    // How many scoring runs the demo's phases fall into depends on the machine's speed, so the
    // creator is sure to have a change to explain: forty accounts repost it, and the run that
    // scores them is awaited.
    fans_repost(stack, net, id).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut explained = 0;
    while explained == 0 && std::time::Instant::now() < deadline {
        for d in Dimension::ALL {
            b.goto(&format!("{base}/creator/{net}/{id}?dim={}", d.name())).await?;
            b.find("h2").await?;
            let sums = b
            .execute(
                "return [...document.querySelectorAll('section.change')].map(s => [
                    +s.dataset.change,
                    [...s.querySelectorAll('li.contribution')].reduce((a, li) => a + (+li.dataset.delta), 0),
                    s.querySelector('[data-pct-change]') ? +s.querySelector('[data-pct-change]').dataset.pctChange : null,
                    s.querySelectorAll('li.pct').length
                        ? [...s.querySelectorAll('li.pct')].reduce((a, li) => a + (+li.dataset.delta), 0) : null]);",
                vec![],
            )
            .await?;
            for row in sums.as_array().context("an array")? {
                let v: Vec<Option<f64>> = row.as_array().context("a row")?.iter().map(|x| x.as_f64()).collect();
                let (change, sum) = (v[0].context("change")?, v[1].context("sum")?);
                ensure!(
                    (change - sum).abs() < 1e-4,
                    "{}: contributions sum to {sum}, the change shown is {change}",
                    d.name()
                );
                if let (Some(pc), Some(ps)) = (v[2], v[3]) {
                    ensure!(
                        (pc - ps).abs() < 1e-4,
                        "{}: percentile parts sum to {ps}, the move shown is {pc}",
                        d.name()
                    );
                }
                explained += 1;
            }
        }
        if explained == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
    ensure!(explained > 0, "no change was explained on any dimension: nothing checked the sums");
    b.goto(&format!("{base}/creator/{net}/{id}")).await?;
    b.find("h1").await?;
    b.screenshot("console-creator").await?;
    accessible(&b, "console-creator").await?;

    // Someone else's page, and the brand pages, are refused to a creator's key.
    let other = s
        .top
        .iter()
        .flat_map(|(_, accs)| accs.iter())
        .filter_map(|a| a.account.as_ref())
        .map(|a| (a.network.clone(), a.id.clone()))
        .find(|(n, i)| format!("{n}:{i}") != creator)
        .context("another account")?;
    b.goto(&format!("{base}/creator/{}/{}", other.0, other.1)).await?;
    ensure!(b.text("h1").await? == "Your key may not see this", "a foreign creator's page must be refused");
    ensure!(b.text("[role=alert]").await?.contains("only its own accounts"), "the refusal says why");
    b.screenshot("console-creator-refused").await?;
    accessible(&b, "console-creator-refused").await?;
    // The start page and the creator lookup form are pages too.
    b.goto(&format!("{base}/")).await?;
    ensure!(b.text("h1").await? == "Lift", "the start page");
    accessible(&b, "console-home").await?;
    b.goto(&format!("{base}/creator")).await?;
    b.find("form input#network").await?;
    accessible(&b, "console-creator-lookup").await?;
    b.goto(&format!("{base}/campaigns")).await?;
    ensure!(b.text("h1").await? == "Your key may not see this", "a creator key cannot list campaigns");

    // The brand: sign out, sign in with the brand's key.
    b.click("header form button").await?;
    b.wait_for_url(|u| u.path() == "/login").await?;
    b.goto(&format!("{base}/campaigns")).await?;
    b.wait_for_url(|u| u.path() == "/login").await?;
    sign_in(&b, &s.brand_key).await?;
    b.wait_for_url(|u| u.path() == "/campaigns").await?;
    b.find(&format!("a[href='/campaigns/{}']", s.campaign_id)).await?;
    b.find(&format!("a[href='/campaigns/{}/offers']", s.campaign_id)).await?;
    b.screenshot("console-campaigns").await?;
    accessible(&b, "console-campaigns").await?;

    // The report's lift interval is exactly what GetCampaignReport says.
    let mut matching = MatchingServiceClient::new(stack.channel_as(&stack.matching_url(), Some(&s.brand_key))?);
    let rpc = matching
        .get_campaign_report(with_key(
            mpb::GetCampaignReportRequest { campaign_id: s.campaign_id.clone() },
            &s.brand_key,
        )?)
        .await?
        .into_inner();
    let lift = rpc.lift.context("report without lift")?;
    b.goto(&format!("{base}/campaigns/{}/report", s.campaign_id)).await?;
    let shown = b.execute("const l = document.querySelector('#lift'); return l ? [l.dataset.lower ?? null, l.dataset.upper ?? null, l.dataset.nodata ?? null] : null;", vec![]).await?;
    let shown = shown.as_array().context("#lift on the report")?.clone();
    if lift.unavailable_reason.is_empty() && lift.treated > 0 && lift.holdout > 0 && lift.upper > lift.lower {
        let lo: f64 = shown[0].as_str().context("data-lower")?.parse()?;
        let hi: f64 = shown[1].as_str().context("data-upper")?.parse()?;
        ensure!(
            (lo - lift.lower).abs() < 1e-6 && (hi - lift.upper).abs() < 1e-6,
            "page [{lo}, {hi}] vs RPC [{}, {}]",
            lift.lower,
            lift.upper
        );
        b.find("#lift svg").await?;
    } else {
        ensure!(shown[2].as_str() == Some("true"), "no data for lift must be said, not drawn");
    }
    // Outcomes over time add up to the campaign's clicks (the demo's campaign spans few days).
    let totals = rpc.totals.context("report without totals")?;
    ensure!(!rpc.daily.is_empty() || totals.clicks == 0, "clicks but no days in the report");
    ensure!(rpc.daily.iter().map(|d| d.clicks).sum::<u64>() == totals.clicks, "days do not add up to the clicks");
    let daily = b
        .execute(
            "return [...document.querySelectorAll('#daily tbody tr')].reduce((a, r) => a + (+r.dataset.clicks), 0);",
            vec![],
        )
        .await?;
    ensure!(daily.as_u64() == Some(totals.clicks), "the page's days show {daily} clicks, the report {}", totals.clicks);
    b.screenshot("console-report").await?;
    accessible(&b, "console-report").await?;

    // The offered campaign: every shortlisted creator's reasons.
    b.goto(&format!("{base}/campaigns/{}", s.campaign_id)).await?;
    let passes = b.execute("return document.querySelectorAll('li.pass').length;", vec![]).await?;
    ensure!(passes.as_u64().unwrap_or(0) > 0, "the shortlist gives its reasons");
    // The funnel starts from every scored account and narrows criterion by criterion.
    let funnel = b
        .execute("const f = [...document.querySelectorAll('figure svg')].find(s => s.getAttribute('aria-label').startsWith('Eligibility funnel')); return f ? f.getAttribute('aria-label') : '';", vec![])
        .await?;
    let funnel = funnel.as_str().unwrap_or_default().to_owned();
    ensure!(funnel.contains("every scored account: "), "no eligibility funnel on the campaign page: {funnel:?}");
    let counts: Vec<u64> =
        funnel.split(", ").filter_map(|step| step.rsplit(": ").next()?.trim().parse().ok()).collect();
    ensure!(counts.len() >= 3 && counts.windows(2).all(|w| w[0] >= w[1]), "the funnel narrows: {funnel}");
    b.screenshot("console-campaign").await?;
    accessible(&b, "console-campaign").await?;

    // The demo's standing perk program: its campaign page offers no portfolio to
    // issue, and its own page lists exactly the perks and controls matching holds.
    let sid = &s.standing_campaign_id;
    b.goto(&format!("{base}/campaigns/{sid}")).await?;
    let text = b.text("main").await?;
    ensure!(text.contains("Standing perk program"), "the standing campaign's page says what it is: {text}");
    let issue = b.execute("return document.querySelectorAll('form[action$=\"/offers\"]').length;", vec![]).await?;
    ensure!(issue.as_u64() == Some(0), "a standing program has no 'Issue offers' button");
    b.click(&format!("a[href='/campaigns/{sid}/standing']")).await?;
    b.wait_for_url(|u| u.path().ends_with("/standing")).await?;
    let want = matching
        .get_standing_program(with_key(
            mpb::GetStandingProgramRequest { campaign_id: sid.clone(), page_size: 1_000, page_token: String::new() },
            &s.brand_key,
        )?)
        .await?
        .into_inner();
    let program = want.program.clone().context("GetStandingProgram has no program")?;
    let (given, held) = (
        want.perks.iter().filter(|p| !p.holdout).count() as u64,
        want.perks.iter().filter(|p| p.holdout).count() as u64,
    );
    ensure!(given == program.offers && held == program.controls, "the RPC's perks agree with its books");
    ensure!(given > 0, "the demo's program gave perks");
    let headings = b.execute("return [...document.querySelectorAll('h2')].map(h => h.textContent);", vec![]).await?;
    let headings: Vec<String> = serde_json::from_value(headings)?;
    ensure!(headings.contains(&format!("Perks given ({given})")), "perks heading: {headings:?}");
    ensure!(headings.contains(&format!("Control group ({held})")), "controls heading: {headings:?}");
    let rows = b.execute("return [...document.querySelectorAll('main table caption')].map(c => c.closest('table').querySelectorAll('tbody tr').length);", vec![]).await?;
    let rows: Vec<u64> = serde_json::from_value(rows)?;
    ensure!(rows.iter().sum::<u64>() == given + held, "one row per perk and control place: {rows:?}");
    let text = b.text("main").await?;
    for link in want.perks.iter().filter(|p| !p.holdout).map(|p| &p.link) {
        ensure!(text.contains(link.as_str()), "perk link {link} shown");
    }
    let spent = format!("{}.{:02} {}", program.spent / 100, program.spent % 100, program.currency);
    ensure!(text.contains(&spent), "spend {spent} shown: {text}");
    b.screenshot("console-standing").await?;
    accessible(&b, "console-standing").await?;

    // A fresh draft: portfolio with marginal gains, then offers with links, codes and a control group.
    let spec = draft_spec();
    let draft = matching
        .create_campaign(with_key(mpb::CreateCampaignRequest { spec: Some(spec) }, &s.brand_key)?)
        .await?
        .into_inner()
        .campaign
        .context("no campaign")?;
    b.goto(&format!("{base}/campaigns/{}", draft.id)).await?;
    ensure!(b.text("main").await?.contains("Marginal reach"), "the draft shows its portfolio");
    b.click(&format!("form[action='/campaigns/{}/offers'] button", draft.id)).await?;
    b.wait_for_url(|u| u.path().ends_with("/offers")).await?;
    ensure!(b.text("h1").await? == "Offers: Console check", "the offers page after issuing");
    // What the page lists is what ListOffers reads back: every link, code and state, and the
    // control group as its own list.
    let listed = list_offers(&mut matching, &s.brand_key, &draft.id).await?;
    let shown = shown_offers(&b).await?;
    ensure!(shown.offered.len() >= 2, "links and codes listed, got {:?}", shown.offered);
    ensure!(shown == expected_offers(&listed), "the page lists {shown:?}, ListOffers {listed:?}");
    b.screenshot("console-offers").await?;
    accessible(&b, "console-offers").await?;

    // A second draft, issued over the RPC: no offers before, then exactly CreateOffers' links,
    // codes and control group, read back whenever the brand returns, with each offer's state.
    let spec2 = mpb::CampaignSpec { name: "Console reread".into(), budget: 10_000, ..draft_spec() };
    let second = matching
        .create_campaign(with_key(mpb::CreateCampaignRequest { spec: Some(spec2) }, &s.brand_key)?)
        .await?
        .into_inner()
        .campaign
        .context("no campaign")?;
    b.goto(&format!("{base}/campaigns/{}/offers", second.id)).await?;
    ensure!(b.text("#no-offers").await? == "No offers issued yet.", "a draft has no offers, and says so");
    ensure!(!b.text("main").await?.contains("Control group"), "no control group before offers");
    let created = matching
        .create_offers(with_key(
            mpb::CreateOffersRequest { campaign_id: second.id.clone(), holdout_seed: 7 },
            &s.brand_key,
        )?)
        .await?
        .into_inner();
    ensure!(!created.control_group.is_empty(), "a 30 % holdout of the portfolio has a control group: {created:?}");
    let accepted = created.offers.iter().find(|o| !o.holdout).context("no offer issued")?.clone();
    matching
        .transition_offer(with_key(
            mpb::TransitionOfferRequest {
                campaign_id: second.id.clone(),
                account: accepted.account.clone(),
                to_state: ipb::OfferState::Accepted as i32,
                note: String::new(),
                occurred_at: None,
            },
            &s.brand_key,
        )?)
        .await?;
    b.goto(&format!("{base}/campaigns/{}/offers", second.id)).await?;
    let shown = shown_offers(&b).await?;
    let mut want = expected_offers(&created.offers);
    want.offered.iter_mut().filter(|o| o.0 == accepted.link).for_each(|o| o.2 = "accepted".into());
    want.control = created.control_group.iter().map(|a| format!("{}:{}", a.network, a.id)).collect();
    want.control.sort();
    ensure!(shown == want, "the page lists {shown:?}, CreateOffers answered {want:?} (one offer then accepted)");
    ensure!(
        shown == expected_offers(&list_offers(&mut matching, &s.brand_key, &second.id).await?),
        "page vs ListOffers"
    );
    b.screenshot("console-offers-reread").await?;
    accessible(&b, "console-offers-reread").await?;

    // The model page draws a distribution per dimension with data.
    b.goto(&format!("{base}/model")).await?;
    b.find("figure svg").await?;
    b.screenshot("console-model").await?;
    accessible(&b, "console-model").await?;
    b.wait_until_js("document.title.includes('Model')", Duration::from_secs(1)).await?;
    b.close().await
}

/// A reach campaign on active creators, with a 30 % control group.
fn draft_spec() -> mpb::CampaignSpec {
    mpb::CampaignSpec {
        name: "Console check".into(),
        objective: mpb::Objective::Reach as i32,
        perk: "Tasting box".into(),
        unit_cost: 1_000,
        budget: 5_000,
        currency: "EUR".into(),
        criteria: vec![mpb::Criterion {
            dimension: lift_proto::scoring::v1::Dimension::Activity as i32,
            topic: String::new(),
            threshold: Some(mpb::criterion::Threshold::MinPercentile(40.0)),
        }],
        holdout_share: 0.3,
        attribution_window_secs: 86_400,
        ..Default::default()
    }
}

/// What an offers page lists: (link, code, state) per offer and the control group's
/// accounts, each sorted.
#[derive(Debug, PartialEq, Eq)]
struct ShownOffers {
    offered: Vec<(String, String, String)>,
    control: Vec<String>,
}

async fn shown_offers(b: &Browser) -> anyhow::Result<ShownOffers> {
    let v = b
        .execute(
            "return {
                offered: [...document.querySelectorAll('#offers tbody tr')].map(r => {
                    const c = r.querySelectorAll('td');
                    return [c[1].innerText.trim(), c[2].innerText.trim(), c[3].querySelector('strong').innerText.trim()];
                }),
                control: [...document.querySelectorAll('#control-group li')].map(li => li.dataset.account),
            };",
            vec![],
        )
        .await?;
    let strings = |x: &serde_json::Value| -> Vec<String> {
        x.as_array().map(|a| a.iter().map(|s| s.as_str().unwrap_or_default().to_owned()).collect()).unwrap_or_default()
    };
    let offered = v["offered"].as_array().context("offers on the page")?;
    let mut s = ShownOffers {
        offered: offered
            .iter()
            .map(|r| match strings(r).as_slice() {
                [link, code, state] => Ok((link.clone(), code.clone(), state.clone())),
                other => anyhow::bail!("an offer row reads {other:?}"),
            })
            .collect::<anyhow::Result<_>>()?,
        control: strings(&v["control"]),
    };
    s.offered.sort();
    s.control.sort();
    Ok(s)
}

/// What the page should list for `offers` as matching answered them.
fn expected_offers(offers: &[mpb::Offer]) -> ShownOffers {
    let state = |o: &mpb::Offer| {
        lift_domain::offer::OfferState::from_code(o.state).map_or("unknown state", |s| s.name()).to_owned()
    };
    let mut offered: Vec<_> =
        offers.iter().filter(|o| !o.holdout).map(|o| (o.link.clone(), o.code.clone(), state(o))).collect();
    offered.sort();
    let mut control: Vec<_> = offers
        .iter()
        .filter(|o| o.holdout && o.in_portfolio)
        .filter_map(|o| o.account.as_ref().map(|a| format!("{}:{}", a.network, a.id)))
        .collect();
    control.sort();
    ShownOffers { offered, control }
}

/// Every offer of `campaign_id`, through `ListOffers`.
async fn list_offers(
    m: &mut MatchingServiceClient<lift_runtime::client::Channel>,
    key: &str,
    campaign_id: &str,
) -> anyhow::Result<Vec<mpb::Offer>> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let r = m
            .list_offers(with_key(
                mpb::ListOffersRequest { campaign_id: campaign_id.into(), page_size: 0, page_token: token },
                key,
            )?)
            .await?
            .into_inner();
        out.extend(r.offers);
        if r.next_page_token.is_empty() {
            return Ok(out);
        }
        token = r.next_page_token;
    }
}

/// Forty new accounts repost `net:id` a minute after the ledger's latest event; returns once
/// scoring serves a run that includes them.
async fn fans_repost(stack: &Stack, net: &str, id: &str) -> anyhow::Result<()> {
    let mut ingest = IngestServiceClient::new(stack.channel(&stack.ingest_url())?);
    let mut scoring = ScoringServiceClient::new(stack.channel(&stack.scoring_url())?);
    let account = ipb::AccountRef { network: net.into(), id: id.into() };
    let scores = |scoring: &mut ScoringServiceClient<_>| {
        let req = spb::GetScoresRequest { accounts: vec![account.clone()] };
        let mut c = scoring.clone();
        async move { anyhow::Ok(c.get_scores(req).await?.into_inner().accounts.into_iter().next()) }
    };
    let before = scores(&mut scoring).await?.context("the creator has scores")?;
    let at = before.as_of_time.map_or(0, |t| t.seconds) + 60;
    let events: Vec<ipb::Event> = (0..40)
        .map(|i| ipb::Event {
            event_id: format!("console-fan-{i}"),
            source: "console-test".into(),
            occurred_at: Some(lift_proto::Timestamp { seconds: at, nanos: 0 }),
            kind: Some(ipb::event::Kind::Engagement(ipb::Engagement {
                kind: ipb::EngagementKind::Repost as i32,
                actor: Some(ipb::AccountRef { network: net.into(), id: format!("console-fan-{i}") }),
                post_id: String::new(),
                target: Some(account.clone()),
            })),
        })
        .collect();
    let r = ingest.ingest_batch(ipb::IngestBatchRequest { events }).await?.into_inner();
    ensure!(r.accepted == 40, "the reposts were not accepted: {r:?}");
    let head = ingest.get_ledger_info(ipb::GetLedgerInfoRequest {}).await?.into_inner().head_offset;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let now = scores(&mut scoring).await?.context("the creator has scores")?;
        if now.as_of_offset >= head {
            return Ok(());
        }
        ensure!(std::time::Instant::now() < deadline, "scoring did not reach offset {head} within a minute");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
