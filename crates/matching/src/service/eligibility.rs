//! Eligibility: `MatchCampaign`, and the eligible set recorded per scoring
//! model version, with the churn each model change caused.

use lift_proto::convert::prelude::*;
use std::collections::BTreeSet;

use lift_domain::AccountId;
use lift_domain::campaign::{self as rules, Threshold};
use lift_proto::matching::v1 as pb;
use lift_store::campaigns as repo;

use super::campaigns::{ChurnRecord, StoredCampaign};
use super::ranking::CampaignRanking;
use super::tokens::{decode_match_token, encode_match_token};
use super::{Matching, to_json};
use crate::Error;
use crate::auth::BrandId;
use crate::snapshot::FunnelStep;

/// What an evaluation is for: how fresh its scores must be and whether it
/// records the eligible set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// Listing candidates: may answer from the previous run's scores, marked stale.
    Browse,
    /// Choosing a portfolio: waits for the current run.
    Choose,
    /// Issuing offers: waits for the current run and records its eligible set.
    Offer,
}

impl Matching {
    /// Ranks under the campaign's effective criteria and, when scoring's model
    /// version differs from the one last recorded, records the new eligible set
    /// with the churn (and translates absolute thresholds first, so they keep
    /// their meaning on the new scale).
    ///
    /// The recorded set is the baseline churn is measured against: taken at the
    /// first evaluation over a real scoring run, and again when offers go out
    /// (`Purpose::Offer`), the moment eligibility decides who is held out.
    pub(super) async fn evaluate(
        &self,
        c: &mut StoredCampaign,
        relax: f64,
        near_limit: usize,
        purpose: Purpose,
    ) -> Result<CampaignRanking, Error> {
        let (rebase, fresh) = (purpose == Purpose::Offer, purpose != Purpose::Browse);
        let scores = &self.inner.scores;
        let mut spec = c.effective_spec();
        let mut ranking = scores.rank(&spec, relax, near_limit, fresh).await?;
        // Before scoring's first run there is nothing to record.
        if ranking.as_of == 0 || ranking.model_version.is_empty() {
            return Ok(ranking);
        }
        if ranking.model_version == c.row.model_version {
            if rebase {
                let list: Vec<AccountId> = ranking.eligible_set().into_iter().collect();
                repo::replace_eligibility(&self.inner.db, &c.row.id, &ranking.model_version, &list, &to_json(&c.churn))
                    .await?;
            }
            return Ok(ranking);
        }
        let from = c.row.model_version.clone();
        let old_criteria = spec.criteria.clone();
        let mut translated = Vec::new();
        if !from.is_empty() && spec.criteria.iter().any(|c| matches!(c.threshold, Threshold::MinValue(_))) {
            translated = self.translate(&spec.criteria, &from, &ranking.model_version).await?;
            if !translated.is_empty() {
                for crit in &mut spec.criteria {
                    if let Some(t) = translated.iter().find(|t| t.dimension == crit.dimension && t.topic == crit.topic)
                    {
                        crit.threshold = t.threshold;
                    }
                }
                ranking = scores.rank(&spec, relax, near_limit, fresh).await?;
            }
        }
        let now: BTreeSet<AccountId> = ranking.eligible_set();
        if !from.is_empty() {
            let before: BTreeSet<AccountId> = repo::eligibility(&self.inner.db, &c.row.id).await?.into_iter().collect();
            let (entered, left, stayed) = rules::churn(&before, &now);
            let versions = (from.as_str(), ranking.model_version.as_str());
            self.note_recalibration(&c.row.id, versions, &old_criteria, &translated, (&before, &now)).await?;
            c.churn.push(ChurnRecord {
                from_version: from,
                to_version: ranking.model_version.clone(),
                entered,
                left,
                stayed,
                translated,
            });
        }
        let list: Vec<AccountId> = now.into_iter().collect();
        repo::replace_eligibility(&self.inner.db, &c.row.id, &ranking.model_version, &list, &to_json(&c.churn)).await?;
        c.row.model_version = ranking.model_version.clone();
        Ok(ranking)
    }

    pub async fn match_campaign(
        &self,
        brand: &BrandId,
        req: &pb::MatchCampaignRequest,
    ) -> Result<pb::MatchCampaignResponse, Error> {
        let relax = req.near_miss_margin;
        if !relax.is_finite() || !(0.0..=100.0).contains(&relax) {
            return Err(Error::invalid("near_miss_margin", format!("is {relax}; it must be between 0 and 100")));
        }
        let after = if req.page_token.is_empty() { None } else { Some(decode_match_token(&req.page_token)?) };
        let size = self.page_size(req.page_size) as usize;
        let mut c = self.load(brand, &req.campaign_id).await?;
        // Near misses belong to the campaign, not to a page: sent once, with the first page.
        let near_limit = if after.is_none() { size } else { 0 };
        let ranking = self.evaluate(&mut c, relax, near_limit, Purpose::Browse).await?;
        let total = ranking.eligible.len();
        let start = match &after {
            None => 0,
            Some((key, account)) => ranking.eligible_after(*key, account),
        };
        let page: Vec<pb::Candidate> = (start..total.min(start.saturating_add(size)))
            .filter_map(|i| ranking.judged(&ranking.eligible, i).map(|j| j.to_proto(i + 1)))
            .collect();
        let next_page_token = match ranking.eligible_key(start + size - 1) {
            Some((key, account)) if start + size < total => encode_match_token(key, &account),
            _ => String::new(),
        };
        let near_misses = if after.is_none() {
            (0..ranking.near.len().min(size))
                .filter_map(|i| ranking.judged(&ranking.near, i).map(|j| j.to_proto(i + 1)))
                .collect()
        } else {
            Vec::new()
        };
        let funnel = if after.is_none() { ranking.funnel.iter().map(funnel_step).collect() } else { Vec::new() };
        Ok(pb::MatchCampaignResponse {
            eligible: page,
            near_misses,
            next_page_token,
            total_eligible: total as u64,
            model_version: ranking.model_version,
            as_of_offset: ranking.as_of,
            stale: ranking.stale,
            funnel,
        })
    }
}

fn funnel_step((step, remaining): &(FunnelStep, u64)) -> pb::FunnelStep {
    let (criterion, name) = match step {
        FunnelStep::Scored => (None, "scored"),
        FunnelStep::Rule(c) => (Some(c.to_proto()), "criterion"),
        FunnelStep::Topics => (None, "topics"),
        FunnelStep::NotExcluded => (None, "not excluded"),
    };
    pb::FunnelStep { criterion, step: name.to_owned(), remaining: *remaining }
}
