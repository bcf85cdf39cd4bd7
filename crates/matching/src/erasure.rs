//! Matching acting on ingestion's erasure markers (see docs/privacy.md).
//!
//! The report consumer (`crate::reports`) is matching's one follower of the
//! ledger, with a persisted position; it meets every marker (tailing all
//! kinds when it aggregates reports, or asking `Subscribe` for markers only
//! when it just follows the head) and, before moving its position past one:
//!
//! 1. waits until scoring's published run is as of the marker or later —
//!    scoring serves its pre-erasure run until its replay of the redacted
//!    ledger is done, and a `MatchCampaign` answered from that run could record
//!    the account again after a purge;
//! 2. finds the account whose hash the marker carries among the accounts
//!    matching's tables name (offers, recorded eligibility, rate cards,
//!    standing-program grants, portfolio members, the accounts a standing
//!    program's recalibration listed as having left) — a visitor's or a
//!    retention marker's hash matches none;
//! 3. in one transaction, deletes the account's offers (holdout controls
//!    included), recorded eligibility, rate-card entries and standing grants
//!    (a program's totals keep counting what was spent), removes it from
//!    every recorded portfolio's members and recalibration lists, and deletes **every** report
//!    aggregate (a builder's state names creators, their audiences and
//!    customers; each is rebuilt from the redacted ledger by the consumer's next
//!    session, which costs one read of the ledger per offered campaign);
//! 4. drops the score cache's snapshot, so no answer falls back to the run that
//!    still held the account.

use std::sync::Arc;
use std::time::Duration;

use lift_domain::AccountId;
use lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use lift_runtime::Shutdown;
use lift_runtime::client::{Channel, RetryPolicy};
use lift_store::matching_erasure::{self as store, DeletedRows};
use lift_store::privacy::account_hash;
use lift_store::{DatabaseConnection, TransactionTrait};

use crate::Error;
use crate::snapshot::ScoreCache;

/// How often the consumer asks whether scoring has caught up with a marker.
const SCORING_POLL: Duration = Duration::from_millis(250);

/// What the report consumer needs to act on a marker besides its database.
#[derive(Debug, Clone)]
pub(crate) struct Hooks {
    pub(crate) scoring: ScoringServiceClient<Channel>,
    pub(crate) retry: RetryPolicy,
    /// The score cache, when matching keeps one.
    pub(crate) cache: Option<Arc<ScoreCache>>,
}

/// What acting on one marker removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Purged {
    pub(crate) account_known: bool,
    pub(crate) rows: DeletedRows,
    pub(crate) portfolios: u64,
    /// Standing programs' recalibration records the account was listed in.
    pub(crate) recalibrations: u64,
    pub(crate) aggregates: u64,
}

/// Waits until scoring's current run is as of `offset` or later; false when
/// `stop` fired first. Scoring being unreachable is logged and waited out.
pub(crate) async fn wait_for_scoring(hooks: &Hooks, offset: u64, stop: &Shutdown) -> bool {
    let mut logged = false;
    loop {
        match crate::snapshot::probe(&hooks.scoring, &hooks.retry).await {
            Ok((_, as_of)) if as_of >= offset => return true,
            Ok((_, as_of)) if !logged => {
                tracing::info!(marker = offset, scoring = as_of, "erasure: waiting for scoring's replay");
                logged = true;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, marker = offset, "erasure: cannot ask scoring for its run; retrying"),
        }
        tokio::select! {
            () = stop.wait() => return false,
            () = tokio::time::sleep(SCORING_POLL) => {}
        }
    }
}

/// The account of `hash` among those matching's tables name.
async fn find(db: &impl lift_store::ConnectionTrait, hash: &str) -> Result<Option<AccountId>, Error> {
    let mut named = store::named_accounts(db).await?;
    for (_, json) in store::portfolios(db).await? {
        named.extend(members(&json).into_iter().flatten());
    }
    for (.., json) in store::recalibration_lists(db).await? {
        named.extend(serde_json::from_str::<Vec<AccountId>>(&json).unwrap_or_default());
    }
    Ok(named.into_iter().find(|a| account_hash(a) == hash))
}

/// The accounts of a portfolio's members (`None` for one that does not parse).
fn members(json: &str) -> Vec<Option<AccountId>> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else { return Vec::new() };
    let Some(list) = v.get("members").and_then(|m| m.as_array()) else { return Vec::new() };
    list.iter().map(|m| m.get("account").and_then(|a| serde_json::from_value(a.clone()).ok())).collect()
}

/// The portfolio without `account` among its members; `None` when it is not there.
fn without(json: &str, account: &AccountId) -> Option<String> {
    let mut v = serde_json::from_str::<serde_json::Value>(json).ok()?;
    let list = v.get_mut("members")?.as_array_mut()?;
    let before = list.len();
    list.retain(|m| {
        m.get("account").and_then(|a| serde_json::from_value::<AccountId>(a.clone()).ok()).as_ref() != Some(account)
    });
    (list.len() != before).then(|| v.to_string())
}

/// Steps 2–3 of the module docs, in one transaction.
pub(crate) async fn purge(db: &DatabaseConnection, hash: &str) -> Result<Purged, Error> {
    let txn = db.begin().await.map_err(lift_store::Error::from)?;
    let account = find(&txn, hash).await?;
    let mut out = Purged { account_known: account.is_some(), ..Purged::default() };
    if let Some(a) = &account {
        out.rows = store::delete_account(&txn, a).await?;
        for (id, json) in store::portfolios(&txn).await? {
            if let Some(redacted) = without(&json, a) {
                store::set_portfolio(&txn, &id, &redacted).await?;
                out.portfolios += 1;
            }
        }
        for (campaign, from, to, json) in store::recalibration_lists(&txn).await? {
            // A list that does not parse names nobody we could find; it is left as it is.
            let Ok(mut left) = serde_json::from_str::<Vec<AccountId>>(&json) else { continue };
            let before = left.len();
            left.retain(|x| x != a);
            if left.len() != before {
                let json = serde_json::to_string(&left).map_err(|e| Error::Internal(e.to_string()))?;
                store::set_recalibration_list(&txn, (&campaign, &from, &to), &json).await?;
                out.recalibrations += 1;
            }
        }
    }
    out.aggregates = store::delete_report_aggregates(&txn).await?;
    txn.commit().await.map_err(lift_store::Error::from)?;
    Ok(out)
}

/// Step 4: the cached run may still hold the account.
pub(crate) fn forget_cached(hooks: &Hooks) {
    if let Some(c) = &hooks.cache {
        c.forget();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the portfolio redaction: only the erased member goes, the rest of
    /// the JSON stays, and a portfolio without it is left alone.
    #[test]
    fn removes_only_the_erased_member() {
        let json = r#"{"members":[{"account":{"network":"x","id":"anna"},"handle":"@anna","cost":5},
            {"account":{"network":"x","id":"bob"},"handle":"@bob","cost":7}],"total_cost":12}"#;
        let anna = AccountId::new("x", "anna");
        let out = without(json, &anna).expect("anna is a member");
        assert!(!out.contains("anna"), "{out}");
        assert!(out.contains("@bob") && out.contains("total_cost"), "{out}");
        assert_eq!(members(&out), vec![Some(AccountId::new("x", "bob"))]);
        assert_eq!(without(&out, &anna), None);
    }
}
