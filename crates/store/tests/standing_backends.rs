//! Standing programs' tables on both backends, written by several pools at
//! once as several matching replicas would: every account gets its perk at
//! most once, and the budget and cap hold whatever the interleaving.

use lift_domain::AccountId;
use lift_store::campaigns::{self, Campaign, CampaignState};
use lift_store::standing::{self, Grant, Granted, Program, Recalibration};
use lift_store::testing::TempSqlite;

const BUDGET: i64 = 1_000;

fn program(id: &str, max_offers: u64) -> Program {
    Program {
        campaign_id: id.into(),
        brand_id: "brd_a".into(),
        budget: BUDGET,
        max_offers,
        starts_at: 0,
        ends_at: None,
        spent: 0,
        offers: 0,
        controls: 0,
        runs: 0,
        last_model_version: String::new(),
        last_as_of: 0,
        unaffordable: 0,
        created_at: 1,
    }
}

fn campaign(id: &str) -> Campaign {
    Campaign {
        id: id.into(),
        brand_id: "brd_a".into(),
        name: id.into(),
        state: CampaignState::Draft,
        spec: "{}".into(),
        created_at: 1,
        model_version: String::new(),
        portfolio: None,
        holdout_seed: None,
        offers_offset: None,
        churn: "[]".into(),
    }
}

/// Account `i`: every fifth is held out, the rest cost 100 or 150.
fn grant(i: usize) -> Grant {
    Grant {
        account: AccountId::new("x", format!("a{i:02}")),
        handle: format!("h{i}"),
        holdout: i.is_multiple_of(5),
        cost: if i.is_multiple_of(2) { 100 } else { 150 },
        model_version: "m1".into(),
        as_of: 7,
        granted_at: 1,
        why: "[]".into(),
        registered: false,
    }
}

/// Every pool tries to grant every account at once.
async fn race(pools: &[lift_store::DatabaseConnection], campaign_id: &str, accounts: usize) -> Vec<Granted> {
    let mut tasks = Vec::new();
    for (p, db) in pools.iter().enumerate() {
        for i in 0..accounts {
            // Each pool walks the accounts in its own order, so their grants interleave.
            let i = (i + p * 7) % accounts;
            let (db, id) = (db.clone(), campaign_id.to_owned());
            tasks.push(tokio::spawn(async move {
                standing::grant(&db, &id, &grant(i), "l", "C", 42, 9).await.expect("grant")
            }));
        }
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

async fn concurrent_grants(pools: &[lift_store::DatabaseConnection]) {
    let db = &pools[0];
    campaigns::insert_campaign(db, &campaign("cmp_budget")).await.expect("campaign");
    standing::create(db, &program("cmp_budget", 0)).await.expect("program");
    assert!(
        matches!(standing::create(db, &program("cmp_budget", 0)).await, Err(lift_store::Error::Conflict(_))),
        "a campaign is standing once"
    );
    let outcomes = race(pools, "cmp_budget", 20).await;
    let now = outcomes.iter().filter(|g| **g == Granted::Now).count();
    let p = standing::program(db, "cmp_budget").await.expect("read").expect("program");
    let grants = standing::grants_page(db, "cmp_budget", None, 100).await.expect("grants");
    assert_eq!(grants.len(), now, "one row per grant that happened");
    let spent: i64 = grants.iter().filter(|g| !g.holdout).map(|g| g.cost).sum();
    assert_eq!(p.spent, spent, "the totals agree with the rows");
    assert!(p.spent <= BUDGET, "over-spent: {} of {BUDGET}", p.spent);
    assert!(BUDGET - p.spent < 100, "the budget is used up to less than the cheapest perk: {}", p.spent);
    assert_eq!(
        (p.offers, p.controls),
        (grants.iter().filter(|g| !g.holdout).count() as u64, grants.iter().filter(|g| g.holdout).count() as u64)
    );
    let offers = campaigns::offers(db, "cmp_budget").await.expect("offers");
    assert_eq!(offers.len(), grants.len(), "each grant is an issued offer (or a control) exactly once");
    let c = campaigns::get_campaign(db, "brd_a", "cmp_budget").await.expect("read").expect("campaign");
    assert_eq!((c.state, c.offers_offset), (CampaignState::Offered, Some(9)));

    // A cap of 3 offers, whatever the budget allows.
    campaigns::insert_campaign(db, &campaign("cmp_cap")).await.expect("campaign");
    standing::create(db, &program("cmp_cap", 3)).await.expect("program");
    race(pools, "cmp_cap", 20).await;
    let p = standing::program(db, "cmp_cap").await.expect("read").expect("program");
    assert_eq!(p.offers, 3, "the cap holds under concurrent grants");
    let again = standing::grant(db, "cmp_cap", &grant(1), "l", "C", 42, 9).await.expect("again");
    assert_ne!(again, Granted::Now);

    standing::mark_run(db, "cmp_cap", "m1", 7, 2).await.expect("run");
    standing::mark_run(db, "cmp_cap", "m1", 7, 2).await.expect("run again");
    standing::mark_run(db, "cmp_cap", "m1", 8, 0).await.expect("next run");
    let p = standing::program(db, "cmp_cap").await.expect("read").expect("program");
    assert_eq!((p.runs, p.last_as_of, p.unaffordable), (2, 8, 0), "a run counts once");

    let r = Recalibration {
        from_version: "m1".into(),
        to_version: "m2".into(),
        recorded_at: 5,
        thresholds: "[]".into(),
        entered: 1,
        left: 2,
        stayed: 3,
        left_accounts: "[]".into(),
    };
    standing::record_recalibration(db, "cmp_cap", &r).await.expect("record");
    standing::record_recalibration(db, "cmp_cap", &Recalibration { left: 9, ..r.clone() }).await.expect("repeat");
    assert_eq!(standing::recalibrations(db, "cmp_cap").await.expect("read"), vec![r], "recorded once");
    let todo = standing::unregistered(db, "cmp_cap").await.expect("unregistered");
    assert_eq!(todo.len(), 3);
    standing::mark_registered(db, "cmp_cap", &[todo[0].account.clone()]).await.expect("mark");
    assert_eq!(standing::unregistered(db, "cmp_cap").await.expect("unregistered").len(), 2);

    // Each grant keeps the ledger head it was decided at (where its report starts).
    campaigns::insert_campaign(db, &campaign("cmp_starts")).await.expect("campaign");
    standing::create(db, &program("cmp_starts", 0)).await.expect("program");
    assert_eq!(standing::grant(db, "cmp_starts", &grant(1), "l1", "C1", 42, 30).await.expect("grant"), Granted::Now);
    assert_eq!(standing::grant(db, "cmp_starts", &grant(5), "", "", 42, 44).await.expect("control"), Granted::Now);
    let mut starts = standing::starts(db, "cmp_starts").await.expect("starts");
    starts.sort();
    assert_eq!(starts, vec![(AccountId::new("x", "a01"), 30), (AccountId::new("x", "a05"), 44)]);
    let c = campaigns::get_campaign(db, "brd_a", "cmp_starts").await.expect("read").expect("campaign");
    assert_eq!(c.offers_offset, Some(30), "the campaign's offers offset is its first grant's");
    let counts = standing::grant_counts(db).await.expect("counts");
    assert!(counts.contains(&("cmp_starts".into(), "brd_a".into(), 2)), "{counts:?}");
    assert!(counts.contains(&("cmp_budget".into(), "brd_a".into(), now as u64)), "{counts:?}");
}

/// Pins once-per-account and the budget and cap under three SQLite pools on one file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_standing_grants_under_concurrency() {
    let file = TempSqlite::new("standing");
    let mut pools = Vec::new();
    for _ in 0..3 {
        pools.push(lift_store::connect(&file.url()).await.expect("db"));
    }
    concurrent_grants(&pools).await;
}

/// Pins the same on PostgreSQL, where grants really run side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_standing_grants_under_concurrency() {
    let (_pg, url) = lift_store::testing::postgres().await.expect("PostgreSQL test container");
    let mut pools = Vec::new();
    for _ in 0..3 {
        pools.push(lift_store::connect(&url).await.expect("db"));
    }
    concurrent_grants(&pools).await;
}
