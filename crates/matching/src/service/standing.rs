//! Standing perk programs: `StartStandingProgram` makes a draft campaign
//! standing, [`Matching::evaluate_standing`] gives its perk to every account
//! that has come to meet the criteria under scoring's current run (run by the
//! standing consumer, `crate::standing_feed`, once per run), and
//! `GetStandingProgram` reads the program back.
//!
//! One evaluation of one program: judge the campaign under the current run
//! (`evaluate` with `Purpose::Offer`, which translates absolute thresholds
//! across a model change and records the eligible set — this module's
//! [`Matching::note_recalibration`] keeps the mapping and the accounts that
//! left), then walk the eligible accounts in rank order and, for each not
//! given the perk before, decide holdout (a hash of campaign and account
//! against the campaign's holdout share, so every replica decides alike) and
//! grant it in one transaction (`lift_store::standing::grant`), which refuses
//! a second grant to the same account and any grant the budget or cap does
//! not allow. The offers' tracking links are then registered with ingestion,
//! as `CreateOffers` does; a grant whose registration failed is registered on
//! the next evaluation.

use lift_proto::convert::prelude::*;
use std::collections::{BTreeSet, HashSet};

use lift_domain::campaign::{Criterion, Threshold};
use lift_domain::{AccountId, FieldViolation, time};
use lift_proto::ingest::v1 as ipb;
use lift_proto::matching::v1 as pb;
use lift_runtime::client::retry_idempotent;
use lift_store::campaigns::{self as repo, CampaignState};
use lift_store::standing::{self as store, Granted, Program};
use serde::{Deserialize, Serialize};

use super::campaigns::StoredCampaign;
use super::eligibility::Purpose;
use super::tokens::{decode_offer_token, encode_offer_token};
use super::{Matching, digest, to_json};
use crate::Error;
use crate::auth::BrandId;

/// Accounts listed per recalibration as having left (all are counted).
const MAX_LEFT_LISTED: usize = 1_000;

/// One rule an account passed when it got the perk, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Passed {
    criterion: Criterion,
    observed: f64,
    /// `None` when not finite (JSON has no infinity).
    margin: Option<f64>,
}

/// One threshold moved across a model change, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Moved {
    criterion: Criterion,
    from_value: f64,
    to_value: f64,
}

/// What one evaluation of one program did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StandingRun {
    pub campaign_id: String,
    /// The scoring run judged (empty / 0 before scoring's first run).
    pub model_version: String,
    pub as_of_offset: u64,
    /// Accounts meeting the criteria under this run.
    pub eligible: u64,
    /// Accounts given an offer, and held out as controls, by this evaluation.
    pub offered: Vec<AccountId>,
    pub held_out: Vec<AccountId>,
    /// Eligible accounts the budget left or the cap could not pay for.
    pub unaffordable: u64,
    /// Spent so far and the budget, after this evaluation.
    pub spent: i64,
    pub budget: i64,
}

/// Whether the program accepts grants at `now`, and if not, why.
fn status(p: &Program, now: i64) -> &'static str {
    if now < p.starts_at {
        "not started"
    } else if p.ends_at.is_some_and(|e| now >= e) {
        "ended"
    } else if p.max_offers > 0 && p.offers >= p.max_offers {
        "cap reached"
    } else {
        "open"
    }
}

/// Whether `account` is held out of `campaign`: a uniform draw from a hash of
/// the two, under `share`, so it is the same whichever replica or run asks.
fn held_out(campaign: &str, account: &AccountId, share: f64) -> bool {
    let d = digest(&["standing-holdout", campaign, &account.network, &account.id]);
    let u = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]) as f64 / 2f64.powi(64);
    u < share
}

fn seed_of(campaign: &str) -> u64 {
    let d = digest(&["standing-holdout", campaign]);
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

impl Matching {
    pub async fn start_standing_program(
        &self,
        brand: &BrandId,
        req: &pb::StartStandingProgramRequest,
    ) -> Result<pb::StartStandingProgramResponse, Error> {
        let now = time::now();
        let mut v = Vec::new();
        let rules = req.rules.unwrap_or_default();
        let ts = |t: &Option<lift_proto::Timestamp>, field: &str, v: &mut Vec<FieldViolation>| match t {
            None => None,
            Some(t) => match lift_proto::convert::from_timestamp(t) {
                Some(m) if m > 0 => Some(m),
                _ => {
                    v.push(FieldViolation::new(field, "must be a valid time after 1970"));
                    None
                }
            },
        };
        let starts_at = ts(&rules.starts_at, "rules.starts_at", &mut v).unwrap_or(now);
        let ends_at = ts(&rules.ends_at, "rules.ends_at", &mut v);
        if ends_at.is_some_and(|e| e <= starts_at) {
            v.push(FieldViolation::new("rules.ends_at", "must be after rules.starts_at (or now, when unset)"));
        }
        if rules.max_offers > i64::MAX as u64 {
            v.push(FieldViolation::new("rules.max_offers", format!("is {}; it is too large", rules.max_offers)));
        }
        if !v.is_empty() {
            return Err(Error::Invalid(v));
        }
        let c = self.load(brand, &req.campaign_id).await?;
        if let Some(p) = store::program(&self.inner.db, &c.row.id).await? {
            return Err(Error::AlreadyExists(format!(
                "campaign {} is a standing program already (since {})",
                p.campaign_id, p.created_at
            )));
        }
        if c.row.state != CampaignState::Draft {
            return Err(Error::FailedPrecondition(format!(
                "campaign {} has issued its offers (CreateOffers); only a draft campaign can become standing",
                c.row.id
            )));
        }
        let p = Program {
            campaign_id: c.row.id.clone(),
            brand_id: brand.0.clone(),
            budget: c.spec.budget,
            max_offers: rules.max_offers,
            starts_at,
            ends_at,
            spent: 0,
            offers: 0,
            controls: 0,
            runs: 0,
            last_model_version: String::new(),
            last_as_of: 0,
            unaffordable: 0,
            created_at: now,
        };
        store::create(&self.inner.db, &p).await.map_err(|e| match e {
            lift_store::Error::Conflict(m) => Error::AlreadyExists(m),
            e => Error::Store(e),
        })?;
        tracing::info!(campaign = %p.campaign_id, brand = %brand, max_offers = p.max_offers, "standing program started");
        self.inner.standing_wake.notify_one();
        Ok(pb::StartStandingProgramResponse { program: Some(program_to_proto(&p, &c, now)) })
    }

    pub async fn get_standing_program(
        &self,
        brand: &BrandId,
        req: &pb::GetStandingProgramRequest,
    ) -> Result<pb::GetStandingProgramResponse, Error> {
        let after = if req.page_token.is_empty() { None } else { Some(decode_offer_token(&req.page_token)?) };
        let c = self.load(brand, &req.campaign_id).await?;
        let p = store::program(&self.inner.db, &c.row.id)
            .await?
            .ok_or_else(|| Error::FailedPrecondition(format!("campaign {} is not a standing program", c.row.id)))?;
        let size = self.page_size(req.page_size) as usize;
        let mut grants = store::grants_page(&self.inner.db, &c.row.id, after.as_ref(), size as u64 + 1).await?;
        let more = grants.len() > size;
        grants.truncate(size);
        let next_page_token = match grants.last() {
            Some(last) if more => encode_offer_token(&last.account),
            _ => String::new(),
        };
        let mut perks = Vec::with_capacity(grants.len());
        for g in &grants {
            perks.push(self.perk_to_proto(&c.row.id, g)?);
        }
        let mut recalibrations = Vec::new();
        for r in store::recalibrations(&self.inner.db, &c.row.id).await? {
            let corrupt = |e: serde_json::Error| Error::Corrupt {
                id: c.row.id.clone(),
                reason: format!("standing recalibration {}→{}: {e}", r.from_version, r.to_version),
            };
            let moved: Vec<Moved> = serde_json::from_str(&r.thresholds).map_err(corrupt)?;
            let left: Vec<AccountId> = serde_json::from_str(&r.left_accounts).map_err(corrupt)?;
            recalibrations.push(pb::StandingRecalibration {
                from_version: r.from_version.clone(),
                to_version: r.to_version.clone(),
                thresholds: moved
                    .iter()
                    .map(|m| pb::ThresholdChange {
                        dimension: m.criterion.dimension.to_proto() as i32,
                        topic: m.criterion.topic.clone().unwrap_or_default(),
                        from_value: m.from_value,
                        to_value: m.to_value,
                    })
                    .collect(),
                entered: r.entered,
                left: r.left,
                stayed: r.stayed,
                left_accounts: left.iter().map(AccountId::to_proto).collect(),
                recorded_at: Some(lift_proto::convert::to_timestamp(r.recorded_at)),
            });
        }
        Ok(pb::GetStandingProgramResponse {
            program: Some(program_to_proto(&p, &c, time::now())),
            perks,
            next_page_token,
            recalibrations,
        })
    }

    /// Evaluates every open standing program under scoring's current run now,
    /// whether or not it was evaluated on that run before (granting is
    /// idempotent), and returns what each evaluation did. The standing
    /// consumer calls [`Self::evaluate_standing_new_runs`] instead.
    pub async fn evaluate_standing(&self) -> Result<Vec<StandingRun>, Error> {
        self.evaluate_programs(false).await
    }

    /// Like [`Self::evaluate_standing`], but only programs not yet evaluated
    /// on scoring's current run.
    pub(crate) async fn evaluate_standing_new_runs(&self) -> Result<Vec<StandingRun>, Error> {
        self.evaluate_programs(true).await
    }

    async fn evaluate_programs(&self, only_new: bool) -> Result<Vec<StandingRun>, Error> {
        let programs = store::programs(&self.inner.db).await?;
        let now = time::now();
        let open: Vec<Program> = programs.into_iter().filter(|p| matches!(status(p, now), "open")).collect();
        if open.is_empty() {
            return Ok(Vec::new());
        }
        let run =
            if only_new { Some(crate::snapshot::probe(&self.inner.scoring, &self.inner.retry).await?) } else { None };
        let mut out = Vec::new();
        for p in open {
            if let Some((version, as_of)) = &run
                && p.last_model_version == *version
                && p.last_as_of == *as_of
            {
                continue;
            }
            match self.evaluate_program(&p).await {
                Ok(r) => out.push(r),
                // The consumer keeps going with the other programs; this one is tried on the next poll.
                Err(e) if only_new => {
                    tracing::warn!(campaign = %p.campaign_id, error = %e, "evaluating a standing program failed");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn evaluate_program(&self, p: &Program) -> Result<StandingRun, Error> {
        let db = &self.inner.db;
        let row = repo::get_campaign(db, &p.brand_id, &p.campaign_id)
            .await?
            .ok_or_else(|| Error::CampaignNotFound(p.campaign_id.clone()))?;
        let mut c = StoredCampaign::decode(row)?;
        let ranking = self.evaluate(&mut c, 0.0, 0, Purpose::Offer).await?;
        let mut result = StandingRun {
            campaign_id: p.campaign_id.clone(),
            model_version: ranking.model_version.clone(),
            as_of_offset: ranking.as_of,
            eligible: ranking.eligible.len() as u64,
            spent: p.spent,
            budget: p.budget,
            ..StandingRun::default()
        };
        if ranking.as_of == 0 || ranking.model_version.is_empty() {
            return Ok(result);
        }
        let granted: HashSet<AccountId> = store::granted(db, &p.campaign_id).await?.into_iter().collect();
        let card = lift_store::rate_cards::card(db, &p.brand_id, &c.spec.currency).await?;
        let (seed, now) = (seed_of(&p.campaign_id), time::now());
        let mut head = None;
        for i in 0..ranking.eligible.len() {
            let Some((_, account)) = ranking.eligible_key(i) else { continue };
            if granted.contains(&account) {
                continue;
            }
            let Some(j) = ranking.judged(&ranking.eligible, i) else { continue };
            let holdout = held_out(&p.campaign_id, &account, c.spec.holdout_share);
            let cost = card.get(&account).copied().unwrap_or(c.spec.unit_cost);
            let why: Vec<Passed> = j
                .eval
                .results
                .iter()
                .map(|r| Passed { criterion: r.criterion.clone(), observed: r.observed, margin: finite(r.margin) })
                .collect();
            let g = store::Grant {
                account: account.clone(),
                handle: j.card.handle.clone(),
                holdout,
                cost,
                model_version: ranking.model_version.clone(),
                as_of: ranking.as_of,
                granted_at: now,
                why: to_json(&why),
                registered: false,
            };
            // The head before the first link of this campaign exists bounds its
            // pre-treatment audience (recorded on the campaign's first grant).
            let h = match head {
                Some(h) => h,
                None => {
                    let h = self.ledger_head().await?;
                    head = Some(h);
                    h
                }
            };
            let (link, code) = self.tracking(&p.campaign_id, &account, &g.handle);
            match store::grant(db, &p.campaign_id, &g, &link, &code, seed, h).await? {
                Granted::Now if holdout => result.held_out.push(account),
                Granted::Now => result.offered.push(account),
                Granted::Already => {}
                Granted::Unaffordable => result.unaffordable += 1,
            }
        }
        self.register_standing_links(&c).await?;
        store::mark_run(db, &p.campaign_id, &ranking.model_version, ranking.as_of, result.unaffordable).await?;
        if let Some(now) = store::program(db, &p.campaign_id).await? {
            result.spent = now.spent;
        }
        if !result.offered.is_empty() || !result.held_out.is_empty() {
            tracing::info!(campaign = %p.campaign_id, model_version = %result.model_version, as_of = result.as_of_offset,
                offered = result.offered.len(), held_out = result.held_out.len(), unaffordable = result.unaffordable,
                spent = result.spent, budget = result.budget, "standing program gave perks");
        }
        Ok(result)
    }

    async fn ledger_head(&self) -> Result<u64, Error> {
        let ingest = self.inner.ingest.clone();
        Ok(retry_idempotent(&self.inner.retry, "GetLedgerInfo", || {
            let mut c = ingest.clone();
            async move { c.get_ledger_info(ipb::GetLedgerInfoRequest {}).await }
        })
        .await
        .map_err(Error::ingest)?
        .into_inner()
        .head_offset)
    }

    /// Registers the tracking links and codes of the program's offers that are
    /// not registered yet (registering one again is a no-op at ingestion).
    async fn register_standing_links(&self, c: &StoredCampaign) -> Result<(), Error> {
        let todo = store::unregistered(&self.inner.db, &c.row.id).await?;
        for chunk in todo.chunks(2_500) {
            let links: Vec<ipb::Link> = chunk
                .iter()
                .flat_map(|g| {
                    let (link, code) = self.tracking(&c.row.id, &g.account, &g.handle);
                    [link, code].map(|l| ipb::Link {
                        link: l,
                        owner: Some(g.account.to_proto()),
                        campaign_id: c.row.id.clone(),
                        attribution_window_secs: c.spec.attribution_window_secs,
                        landing_url: c.spec.landing_url.clone(),
                    })
                })
                .collect();
            let req = ipb::RegisterLinksRequest { links };
            let ingest = self.inner.ingest.clone();
            retry_idempotent(&self.inner.retry, "RegisterLinks", || {
                let (mut c, r) = (ingest.clone(), req.clone());
                async move { c.register_links(r).await }
            })
            .await
            .map_err(Error::ingest)?;
            let accounts: Vec<AccountId> = chunk.iter().map(|g| g.account.clone()).collect();
            store::mark_registered(&self.inner.db, &c.row.id, &accounts).await?;
        }
        Ok(())
    }

    /// Called by `evaluate` when a model change moved a campaign's eligible
    /// set: for a standing program, records the thresholds' old→new values
    /// and the accounts that met the criteria before but not after.
    pub(super) async fn note_recalibration(
        &self,
        campaign_id: &str,
        (from, to): (&str, &str),
        old: &[Criterion],
        translated: &[Criterion],
        (before, now): (&BTreeSet<AccountId>, &BTreeSet<AccountId>),
    ) -> Result<(), Error> {
        if store::program(&self.inner.db, campaign_id).await?.is_none() {
            return Ok(());
        }
        let moved: Vec<Moved> = translated
            .iter()
            .filter_map(|t| {
                let o = old.iter().find(|o| o.dimension == t.dimension && o.topic == t.topic)?;
                match (o.threshold, t.threshold) {
                    (Threshold::MinValue(a), Threshold::MinValue(b)) => {
                        Some(Moved { criterion: o.clone(), from_value: a, to_value: b })
                    }
                    _ => None,
                }
            })
            .collect();
        let left: Vec<&AccountId> = before.difference(now).collect();
        let stayed = before.intersection(now).count() as u64;
        let r = store::Recalibration {
            from_version: from.to_owned(),
            to_version: to.to_owned(),
            recorded_at: time::now(),
            thresholds: to_json(&moved),
            entered: now.len() as u64 - stayed,
            left: left.len() as u64,
            stayed,
            left_accounts: to_json(&left.iter().take(MAX_LEFT_LISTED).collect::<Vec<_>>()),
        };
        store::record_recalibration(&self.inner.db, campaign_id, &r).await?;
        tracing::info!(
            campaign = campaign_id,
            from,
            to,
            left = r.left,
            entered = r.entered,
            "standing program recalibrated"
        );
        Ok(())
    }
}

impl Matching {
    /// One grant as `StandingPerk`: its reasons decoded, its tracking link and
    /// code (none for a control).
    pub(super) fn perk_to_proto(&self, campaign_id: &str, g: &store::Grant) -> Result<pb::StandingPerk, Error> {
        let why: Vec<Passed> = serde_json::from_str(&g.why).map_err(|e| Error::Corrupt {
            id: campaign_id.to_owned(),
            reason: format!("standing grant reasons: {e}"),
        })?;
        let (link, code) =
            if g.holdout { (String::new(), String::new()) } else { self.tracking(campaign_id, &g.account, &g.handle) };
        Ok(pb::StandingPerk {
            account: Some(g.account.to_proto()),
            handle: g.handle.clone(),
            holdout: g.holdout,
            cost: g.cost,
            model_version: g.model_version.clone(),
            as_of_offset: g.as_of,
            granted_at: Some(lift_proto::convert::to_timestamp(g.granted_at)),
            criteria: why
                .iter()
                .map(|w| pb::CriterionResult {
                    criterion: Some(w.criterion.to_proto()),
                    passed: true,
                    margin: w.margin.unwrap_or(f64::INFINITY),
                    observed: w.observed,
                    reason: String::new(),
                })
                .collect(),
            link,
            code,
        })
    }
}

fn program_to_proto(p: &Program, c: &StoredCampaign, now: i64) -> pb::StandingProgramStatus {
    pb::StandingProgramStatus {
        campaign_id: p.campaign_id.clone(),
        rules: Some(pb::StandingRules {
            max_offers: p.max_offers,
            starts_at: Some(lift_proto::convert::to_timestamp(p.starts_at)),
            ends_at: p.ends_at.map(lift_proto::convert::to_timestamp),
        }),
        status: status(p, now).to_owned(),
        offers: p.offers,
        controls: p.controls,
        spent: p.spent,
        budget: p.budget,
        budget_left: p.budget - p.spent,
        currency: c.spec.currency.clone(),
        runs_evaluated: p.runs,
        last_model_version: p.last_model_version.clone(),
        last_as_of_offset: p.last_as_of,
        unaffordable_last_run: p.unaffordable,
    }
}
