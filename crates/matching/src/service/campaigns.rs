//! Campaigns as stored: create, read, list; and the criteria in force after
//! every model change's threshold translation.

use lift_domain::campaign::{CampaignSpec, Criterion};
use lift_domain::time;
use lift_proto::convert::prelude::*;
use lift_proto::matching::v1 as pb;
use lift_store::campaigns::{self as repo, CampaignState};
use serde::{Deserialize, Serialize};

use super::tokens::{decode_list_token, encode_list_token};
use super::{Matching, random_hex, to_json};
use crate::Error;
use crate::auth::BrandId;

/// One model change's effect on a campaign's eligible set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ChurnRecord {
    pub(super) from_version: String,
    pub(super) to_version: String,
    pub(super) entered: u64,
    pub(super) left: u64,
    pub(super) stayed: u64,
    /// The campaign's absolute thresholds as evaluated under `to_version`.
    pub(super) translated: Vec<Criterion>,
}

impl ChurnRecord {
    fn to_proto(&self) -> pb::EligibilityChurn {
        pb::EligibilityChurn {
            from_version: self.from_version.clone(),
            to_version: self.to_version.clone(),
            entered: self.entered,
            left: self.left,
            stayed: self.stayed,
            translated: self.translated.iter().map(Criterion::to_proto).collect(),
        }
    }
}

/// A stored campaign with its decoded JSON parts.
#[derive(Debug)]
pub(super) struct StoredCampaign {
    pub(super) row: repo::Campaign,
    pub(super) spec: CampaignSpec,
    pub(super) churn: Vec<ChurnRecord>,
}

impl StoredCampaign {
    pub(super) fn decode(row: repo::Campaign) -> Result<Self, Error> {
        let corrupt =
            |what: &str, e: serde_json::Error| Error::Corrupt { id: row.id.clone(), reason: format!("{what}: {e}") };
        let spec = serde_json::from_str(&row.spec).map_err(|e| corrupt("spec", e))?;
        let churn = serde_json::from_str(&row.churn).map_err(|e| corrupt("churn", e))?;
        Ok(Self { row, spec, churn })
    }

    /// The criteria in force: each absolute threshold as the latest model change
    /// that translated it left it. A change without a published mapping keeps
    /// the threshold as it was, so it must not fall back to the brand's number
    /// on the scale of a model two changes back.
    pub(super) fn effective_spec(&self) -> CampaignSpec {
        let mut spec = self.spec.clone();
        for c in &mut spec.criteria {
            let latest = self
                .churn
                .iter()
                .rev()
                .find_map(|r| r.translated.iter().find(|t| t.dimension == c.dimension && t.topic == c.topic));
            if let Some(t) = latest {
                c.threshold = t.threshold;
            }
        }
        spec
    }

    pub(super) fn to_proto(&self) -> pb::Campaign {
        pb::Campaign {
            id: self.row.id.clone(),
            spec: Some(self.spec.to_proto()),
            state: match self.row.state {
                CampaignState::Draft => pb::CampaignState::Draft,
                CampaignState::Offered => pb::CampaignState::Offered,
            } as i32,
            created_at: Some(lift_proto::convert::to_timestamp(self.row.created_at)),
            model_version: self.row.model_version.clone(),
            churn: self.churn.iter().map(ChurnRecord::to_proto).collect(),
        }
    }
}

impl Matching {
    /// The brand's campaign `id`; another brand's looks missing.
    pub(super) async fn load(&self, brand: &BrandId, id: &str) -> Result<StoredCampaign, Error> {
        if id.is_empty() {
            return Err(Error::invalid("campaign_id", "is required"));
        }
        let row = repo::get_campaign(&self.inner.db, &brand.0, id)
            .await?
            .ok_or_else(|| Error::CampaignNotFound(id.into()))?;
        StoredCampaign::decode(row)
    }

    pub async fn create_campaign(
        &self,
        brand: &BrandId,
        spec: Option<&pb::CampaignSpec>,
    ) -> Result<pb::Campaign, Error> {
        let spec = spec.ok_or_else(|| Error::invalid("spec", "is required"))?;
        let spec = CampaignSpec::from_proto(spec)
            .map_err(|v| Error::Invalid(v.into_iter().map(|v| v.prefixed("spec")).collect()))?;
        let row = repo::Campaign {
            id: format!("cmp_{}", random_hex(8)),
            brand_id: brand.0.clone(),
            name: spec.name.clone(),
            state: CampaignState::Draft,
            spec: to_json(&spec),
            created_at: time::now(),
            model_version: String::new(),
            portfolio: None,
            holdout_seed: None,
            offers_offset: None,
            churn: "[]".to_owned(),
        };
        repo::insert_campaign(&self.inner.db, &row).await?;
        tracing::info!(campaign = %row.id, brand = %brand, "campaign created");
        Ok(StoredCampaign::decode(row)?.to_proto())
    }

    pub async fn get_campaign(&self, brand: &BrandId, id: &str) -> Result<pb::Campaign, Error> {
        Ok(self.load(brand, id).await?.to_proto())
    }

    pub async fn list_campaigns(
        &self,
        brand: &BrandId,
        req: &pb::ListCampaignsRequest,
    ) -> Result<pb::ListCampaignsResponse, Error> {
        let size = self.page_size(req.page_size);
        let after = if req.page_token.is_empty() { None } else { Some(decode_list_token(&req.page_token)?) };
        let rows = repo::list_campaigns(
            &self.inner.db,
            &brand.0,
            after.as_ref().map(|(at, id)| (*at, id.as_str())),
            u64::from(size) + 1,
        )
        .await?;
        let more = rows.len() > size as usize;
        let rows: Vec<_> = rows.into_iter().take(size as usize).collect();
        let next_page_token = match rows.last() {
            Some(last) if more => encode_list_token(last.created_at, &last.id),
            _ => String::new(),
        };
        let campaigns =
            rows.into_iter().map(|r| StoredCampaign::decode(r).map(|c| c.to_proto())).collect::<Result<_, _>>()?;
        Ok(pb::ListCampaignsResponse { campaigns, next_page_token })
    }
}
