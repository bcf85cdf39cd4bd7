//! Standing perk programs: a campaign that gives its perk to every account
//! that comes to meet its criteria, once, within its budget, cap and dates.
//!
//! - `standing_programs`: one row per program — its rules and running totals
//!   (spent, offers, controls, runs evaluated).
//! - `standing_grants`: one row per account given the perk (or held out as a
//!   control). Its primary key (campaign, network, account) is the "once":
//!   of two concurrent evaluations granting the same account, one inserts and
//!   the other finds the row there.
//! - `standing_recalibrations`: one row per model change the program went
//!   through, with the thresholds' old→new values and the accounts that left.
//!
//! [`grant`] is one transaction: the grant row, the totals (only while the
//! budget and cap allow, checked in the `UPDATE`'s own condition, so two
//! evaluations cannot both spend the last of the budget), the issued offer in
//! `campaign_offers` and, on the first grant, the campaign's move to offered.
//! JSON columns (`why`, `thresholds`, `left_accounts`) are the caller's.

use lift_domain::offer::OfferState;
use lift_domain::{AccountId, Micros};
use sea_orm::sea_query::Value;
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, TransactionSession, TransactionTrait};

use crate::Error;
use crate::campaigns::CampaignState;

/// A program's rules and totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub campaign_id: String,
    pub brand_id: String,
    /// Minor units of the campaign's currency.
    pub budget: i64,
    /// Most offers (controls do not count); 0 = no cap beyond the budget.
    pub max_offers: u64,
    pub starts_at: Micros,
    pub ends_at: Option<Micros>,
    pub spent: i64,
    pub offers: u64,
    pub controls: u64,
    /// Scoring runs evaluated, and the last one.
    pub runs: u64,
    pub last_model_version: String,
    pub last_as_of: u64,
    /// Accounts that qualified on the last run evaluated but could not be afforded.
    pub unaffordable: u64,
    pub created_at: Micros,
}

/// One account's perk (or control-group place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub account: AccountId,
    pub handle: String,
    pub holdout: bool,
    /// 0 when held out.
    pub cost: i64,
    /// The scoring run it qualified in.
    pub model_version: String,
    pub as_of: u64,
    pub granted_at: Micros,
    /// JSON: why it qualified.
    pub why: String,
    /// Whether its tracking link and code are registered with ingestion.
    pub registered: bool,
}

/// What [`grant`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granted {
    /// The account got the perk (or its control-group place) now.
    Now,
    /// It had it already: nothing changed.
    Already,
    /// The budget left or the cap does not allow it: nothing changed.
    Unaffordable,
}

/// One model change as a program went through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recalibration {
    pub from_version: String,
    pub to_version: String,
    pub recorded_at: Micros,
    /// JSON: the thresholds' old and new values.
    pub thresholds: String,
    pub entered: u64,
    pub left: u64,
    pub stayed: u64,
    /// JSON: (some of) the accounts that left.
    pub left_accounts: String,
}

fn to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_db(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `sql` with `?` placeholders, numbered for PostgreSQL.
fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let text = if backend == DbBackend::Postgres {
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for ch in sql.chars() {
            if ch == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(ch);
            }
        }
        out
    } else {
        sql.to_owned()
    };
    Statement::from_sql_and_values(backend, text, values)
}

fn s(v: &str) -> Value {
    Value::from(v.to_owned())
}

const PROGRAM_COLUMNS: &str = "campaign_id, brand_id, budget, max_offers, starts_at, ends_at, spent, offers, \
     controls, runs, last_model_version, last_as_of, unaffordable, created_at";

fn program_of(r: &QueryResult) -> Result<Program, Error> {
    Ok(Program {
        campaign_id: r.try_get_by_index(0)?,
        brand_id: r.try_get_by_index(1)?,
        budget: r.try_get_by_index(2)?,
        max_offers: from_db(r.try_get_by_index(3)?),
        starts_at: r.try_get_by_index(4)?,
        ends_at: r.try_get_by_index(5)?,
        spent: r.try_get_by_index(6)?,
        offers: from_db(r.try_get_by_index(7)?),
        controls: from_db(r.try_get_by_index(8)?),
        runs: from_db(r.try_get_by_index(9)?),
        last_model_version: r.try_get_by_index(10)?,
        last_as_of: from_db(r.try_get_by_index(11)?),
        unaffordable: from_db(r.try_get_by_index(12)?),
        created_at: r.try_get_by_index(13)?,
    })
}

/// Records a new program (totals as given, normally zero). A campaign that is
/// standing already is a [`Error::Conflict`].
pub async fn create(db: &impl ConnectionTrait, p: &Program) -> Result<(), Error> {
    let b = db.get_database_backend();
    let sql = format!(
        "INSERT INTO standing_programs ({PROGRAM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (campaign_id) DO NOTHING"
    );
    let values = vec![
        s(&p.campaign_id),
        s(&p.brand_id),
        Value::from(p.budget),
        Value::from(to_db(p.max_offers)),
        Value::from(p.starts_at),
        Value::from(p.ends_at),
        Value::from(p.spent),
        Value::from(to_db(p.offers)),
        Value::from(to_db(p.controls)),
        Value::from(to_db(p.runs)),
        s(&p.last_model_version),
        Value::from(to_db(p.last_as_of)),
        Value::from(to_db(p.unaffordable)),
        Value::from(p.created_at),
    ];
    let r = db.execute_raw(stmt(b, &sql, values)).await?;
    if r.rows_affected() == 0 {
        return Err(Error::Conflict(format!("campaign {} is a standing program already", p.campaign_id)));
    }
    Ok(())
}

/// The program of `campaign_id`, if it is standing.
pub async fn program(db: &impl ConnectionTrait, campaign_id: &str) -> Result<Option<Program>, Error> {
    let b = db.get_database_backend();
    let sql = format!("SELECT {PROGRAM_COLUMNS} FROM standing_programs WHERE campaign_id = ?");
    db.query_one_raw(stmt(b, &sql, vec![s(campaign_id)])).await?.as_ref().map(program_of).transpose()
}

/// Every program, by campaign id.
pub async fn programs(db: &impl ConnectionTrait) -> Result<Vec<Program>, Error> {
    let b = db.get_database_backend();
    let sql = format!("SELECT {PROGRAM_COLUMNS} FROM standing_programs ORDER BY campaign_id");
    db.query_all_raw(stmt(b, &sql, vec![])).await?.iter().map(program_of).collect()
}

/// Notes that the program was evaluated on run (`model_version`, `as_of`),
/// with `unaffordable` accounts it could not pay for; a run counts once.
pub async fn mark_run(
    db: &impl ConnectionTrait,
    campaign_id: &str,
    model_version: &str,
    as_of: u64,
    unaffordable: u64,
) -> Result<(), Error> {
    let b = db.get_database_backend();
    let sql = "UPDATE standing_programs SET \
         runs = runs + CASE WHEN last_model_version = ? AND last_as_of = ? THEN 0 ELSE 1 END, \
         last_model_version = ?, last_as_of = ?, unaffordable = ? WHERE campaign_id = ?";
    let values = vec![
        s(model_version),
        Value::from(to_db(as_of)),
        s(model_version),
        Value::from(to_db(as_of)),
        Value::from(to_db(unaffordable)),
        s(campaign_id),
    ];
    db.execute_raw(stmt(b, sql, values)).await?;
    Ok(())
}

/// Gives `g` its perk (or control-group place) with its issued offer `link`
/// and `code`, in one transaction; see the module's documentation. A control
/// is recorded only while the program could still have paid for the account,
/// so the control group comes from the same accounts the offers go to.
/// `ledger_head` (the ledger head before this evaluation registered any link)
/// is recorded as the grant's start — where its report starts — and as the
/// campaign's offers offset on its first grant.
pub async fn grant<C>(
    db: &C,
    campaign_id: &str,
    g: &Grant,
    link: &str,
    code: &str,
    seed: u64,
    ledger_head: u64,
) -> Result<Granted, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = crate::begin_write(db).await?;
    let b = txn.get_database_backend();
    let (network, account) = (g.account.network.as_str(), g.account.id.as_str());
    let inserted = txn
        .execute_raw(stmt(
            b,
            "INSERT INTO standing_grants (campaign_id, network, account_id, handle, holdout, cost, model_version, \
             as_of, granted_at, why, registered, start_offset) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (campaign_id, network, account_id) DO NOTHING",
            vec![
                s(campaign_id),
                s(network),
                s(account),
                s(&g.handle),
                Value::from(g.holdout),
                Value::from(if g.holdout { 0 } else { g.cost }),
                s(&g.model_version),
                Value::from(to_db(g.as_of)),
                Value::from(g.granted_at),
                s(&g.why),
                Value::from(g.registered),
                Value::from(to_db(ledger_head)),
            ],
        ))
        .await?
        .rows_affected();
    if inserted == 0 {
        txn.rollback().await?;
        return Ok(Granted::Already);
    }
    // The budget and cap are checked by the UPDATE itself: on PostgreSQL a
    // concurrent grant waits for this row's lock and re-checks the condition
    // against the committed totals; SQLite runs one writer at a time.
    let totals = if g.holdout { "controls = controls + 1" } else { "spent = spent + ?, offers = offers + 1" };
    let sql = format!(
        "UPDATE standing_programs SET {totals} WHERE campaign_id = ? AND spent + ? <= budget \
         AND (max_offers = 0 OR offers < max_offers)"
    );
    let mut values = Vec::new();
    if !g.holdout {
        values.push(Value::from(g.cost));
    }
    values.extend([s(campaign_id), Value::from(g.cost)]);
    if txn.execute_raw(stmt(b, &sql, values)).await?.rows_affected() == 0 {
        txn.rollback().await?;
        return Ok(Granted::Unaffordable);
    }
    txn.execute_raw(stmt(
        b,
        "INSERT INTO campaign_offers (campaign_id, network, account_id, handle, link, code, holdout, in_portfolio, \
         cost, state, state_offset) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
        vec![
            s(campaign_id),
            s(network),
            s(account),
            s(&g.handle),
            s(if g.holdout { "" } else { link }),
            s(if g.holdout { "" } else { code }),
            Value::from(g.holdout),
            Value::from(true),
            Value::from(if g.holdout { 0 } else { g.cost }),
            Value::from(OfferState::Offered.code()),
        ],
    ))
    .await?;
    txn.execute_raw(stmt(
        b,
        "UPDATE campaigns SET state = ?, holdout_seed = ?, offers_offset = ? WHERE id = ? AND state = ?",
        vec![
            Value::from(CampaignState::Offered as i16),
            Value::from(seed as i64),
            Value::from(to_db(ledger_head)),
            s(campaign_id),
            Value::from(CampaignState::Draft as i16),
        ],
    ))
    .await?;
    txn.commit().await?;
    Ok(Granted::Now)
}

pub(crate) const GRANT_COLUMNS: &str =
    "network, account_id, handle, holdout, cost, model_version, as_of, granted_at, why, registered";

pub(crate) fn grant_of(r: &QueryResult) -> Result<Grant, Error> {
    Ok(Grant {
        account: AccountId::new(r.try_get_by_index::<String>(0)?, r.try_get_by_index::<String>(1)?),
        handle: r.try_get_by_index(2)?,
        holdout: r.try_get_by_index(3)?,
        cost: r.try_get_by_index(4)?,
        model_version: r.try_get_by_index(5)?,
        as_of: from_db(r.try_get_by_index(6)?),
        granted_at: r.try_get_by_index(7)?,
        why: r.try_get_by_index(8)?,
        registered: r.try_get_by_index(9)?,
    })
}

/// A page of a program's grants, by account, strictly after `after`.
pub async fn grants_page(
    db: &impl ConnectionTrait,
    campaign_id: &str,
    after: Option<&AccountId>,
    limit: u64,
) -> Result<Vec<Grant>, Error> {
    let b = db.get_database_backend();
    let mut values = vec![s(campaign_id)];
    let mut sql = format!("SELECT {GRANT_COLUMNS} FROM standing_grants WHERE campaign_id = ?");
    if let Some(a) = after {
        sql.push_str(" AND (network > ? OR (network = ? AND account_id > ?))");
        values.extend([s(&a.network), s(&a.network), s(&a.id)]);
    }
    sql.push_str(" ORDER BY network, account_id LIMIT ?");
    values.push(Value::from(to_db(limit)));
    db.query_all_raw(stmt(b, &sql, values)).await?.iter().map(grant_of).collect()
}

/// Every account the program has given the perk to or held out.
pub async fn granted(db: &impl ConnectionTrait, campaign_id: &str) -> Result<Vec<AccountId>, Error> {
    let b = db.get_database_backend();
    let sql = "SELECT network, account_id FROM standing_grants WHERE campaign_id = ?";
    db.query_all_raw(stmt(b, sql, vec![s(campaign_id)]))
        .await?
        .iter()
        .map(|r| Ok(AccountId::new(r.try_get_by_index::<String>(0)?, r.try_get_by_index::<String>(1)?)))
        .collect()
}

/// Each granted account's start: the ledger head its grant was decided at
/// (offers and controls alike).
pub async fn starts(db: &impl ConnectionTrait, campaign_id: &str) -> Result<Vec<(AccountId, u64)>, Error> {
    let b = db.get_database_backend();
    let sql = "SELECT network, account_id, start_offset FROM standing_grants WHERE campaign_id = ?";
    db.query_all_raw(stmt(b, sql, vec![s(campaign_id)]))
        .await?
        .iter()
        .map(|r| {
            let account = AccountId::new(r.try_get_by_index::<String>(0)?, r.try_get_by_index::<String>(1)?);
            Ok((account, from_db(r.try_get_by_index(2)?)))
        })
        .collect()
}

/// How many accounts each standing program has granted (offers and
/// controls), with its brand, by campaign: what the report consumer compares
/// with the members its reports know.
pub async fn grant_counts(db: &impl ConnectionTrait) -> Result<Vec<(String, String, u64)>, Error> {
    let b = db.get_database_backend();
    let sql = "SELECT p.campaign_id, p.brand_id, COUNT(*) FROM standing_programs p \
               JOIN standing_grants g ON g.campaign_id = p.campaign_id \
               GROUP BY p.campaign_id, p.brand_id ORDER BY p.campaign_id";
    db.query_all_raw(stmt(b, sql, vec![]))
        .await?
        .iter()
        .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?, from_db(r.try_get_by_index(2)?))))
        .collect()
}

/// Offers (not controls) whose link is not yet registered with ingestion.
pub async fn unregistered(db: &impl ConnectionTrait, campaign_id: &str) -> Result<Vec<Grant>, Error> {
    let b = db.get_database_backend();
    let sql = format!(
        "SELECT {GRANT_COLUMNS} FROM standing_grants WHERE campaign_id = ? AND registered = ? AND holdout = ? \
         ORDER BY network, account_id"
    );
    db.query_all_raw(stmt(b, &sql, vec![s(campaign_id), Value::from(false), Value::from(false)]))
        .await?
        .iter()
        .map(grant_of)
        .collect()
}

/// Notes that these accounts' links are registered.
pub async fn mark_registered(
    db: &impl ConnectionTrait,
    campaign_id: &str,
    accounts: &[AccountId],
) -> Result<(), Error> {
    let b = db.get_database_backend();
    for a in accounts {
        let sql = "UPDATE standing_grants SET registered = ? WHERE campaign_id = ? AND network = ? AND account_id = ?";
        db.execute_raw(stmt(b, sql, vec![Value::from(true), s(campaign_id), s(&a.network), s(&a.id)])).await?;
    }
    Ok(())
}

/// Records a model change once per program (a repeat changes nothing).
pub async fn record_recalibration(
    db: &impl ConnectionTrait,
    campaign_id: &str,
    r: &Recalibration,
) -> Result<(), Error> {
    let b = db.get_database_backend();
    let sql = "INSERT INTO standing_recalibrations (campaign_id, from_version, to_version, recorded_at, thresholds, \
               entered, left_count, stayed, left_accounts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
               ON CONFLICT (campaign_id, from_version, to_version) DO NOTHING";
    let values = vec![
        s(campaign_id),
        s(&r.from_version),
        s(&r.to_version),
        Value::from(r.recorded_at),
        s(&r.thresholds),
        Value::from(to_db(r.entered)),
        Value::from(to_db(r.left)),
        Value::from(to_db(r.stayed)),
        s(&r.left_accounts),
    ];
    db.execute_raw(stmt(b, sql, values)).await?;
    Ok(())
}

/// A program's recalibrations, oldest first.
pub async fn recalibrations(db: &impl ConnectionTrait, campaign_id: &str) -> Result<Vec<Recalibration>, Error> {
    let b = db.get_database_backend();
    let sql = "SELECT from_version, to_version, recorded_at, thresholds, entered, left_count, stayed, left_accounts \
               FROM standing_recalibrations WHERE campaign_id = ? ORDER BY recorded_at, to_version";
    db.query_all_raw(stmt(b, sql, vec![s(campaign_id)]))
        .await?
        .iter()
        .map(|r| {
            Ok(Recalibration {
                from_version: r.try_get_by_index(0)?,
                to_version: r.try_get_by_index(1)?,
                recorded_at: r.try_get_by_index(2)?,
                thresholds: r.try_get_by_index(3)?,
                entered: from_db(r.try_get_by_index(4)?),
                left: from_db(r.try_get_by_index(5)?),
                stayed: from_db(r.try_get_by_index(6)?),
                left_accounts: r.try_get_by_index(7)?,
            })
        })
        .collect()
}
