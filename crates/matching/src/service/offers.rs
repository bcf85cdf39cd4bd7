//! Offers: `CreateOffers` issues a tracking link and code to each creator of
//! the portfolio, draws the holdout, registers the links with ingestion and
//! records it all, once per campaign.

use lift_proto::convert::prelude::*;
use std::collections::{BTreeSet, HashMap};

use lift_domain::AccountId;
use lift_domain::campaign as rules;
use lift_domain::offer::OfferState;
use lift_proto::ingest::v1 as ipb;
use lift_proto::matching::v1 as pb;
use lift_runtime::client::retry_idempotent;
use lift_store::campaigns::{self as repo, CampaignState};

use super::eligibility::Purpose;
use super::{Matching, digest, to_json};
use crate::Error;
use crate::auth::BrandId;

impl Matching {
    pub async fn create_offers(
        &self,
        brand: &BrandId,
        req: &pb::CreateOffersRequest,
    ) -> Result<pb::CreateOffersResponse, Error> {
        let mut c = self.load(brand, &req.campaign_id).await?;
        if lift_store::standing::program(&self.inner.db, &c.row.id).await?.is_some() {
            return Err(Error::FailedPrecondition(format!(
                "campaign {} is a standing program: it issues its offers itself on every scoring run",
                c.row.id
            )));
        }
        if c.row.state != CampaignState::Draft {
            return Err(Error::AlreadyExists(format!("offers for campaign {} have already been issued", c.row.id)));
        }
        let portfolio = match c.portfolio()? {
            Some(p) => p,
            None => {
                let p = self.choose_portfolio(&mut c, 0.0).await?;
                repo::set_portfolio(&self.inner.db, &brand.0, &c.row.id, &to_json(&p)).await?;
                p
            }
        };
        let eligible = self.evaluate(&mut c, 0.0, 0, Purpose::Offer).await?.into_eligible();
        let eligible_ids: Vec<AccountId> = eligible.iter().map(|j| j.card.account.clone()).collect();
        let members: BTreeSet<AccountId> = portfolio.members.iter().map(|m| m.account.clone()).collect();
        let seed = match req.holdout_seed {
            0 => loop {
                let s = rand::random::<u64>();
                if s != 0 {
                    break s;
                }
            },
            s => s,
        };
        let holdout = rules::draw_holdout(&eligible_ids, &members, c.spec.holdout_share, seed);
        let handles: HashMap<&AccountId, &str> = eligible
            .iter()
            .map(|j| (&j.card.account, j.card.handle.as_str()))
            .chain(portfolio.members.iter().map(|m| (&m.account, m.handle.as_str())))
            .collect();

        let mut rows = Vec::new();
        for m in &portfolio.members {
            let held = holdout.contains(&m.account);
            let (link, code) =
                if held { (String::new(), String::new()) } else { self.tracking(&c.row.id, &m.account, &m.handle) };
            rows.push(repo::Offer {
                account: m.account.clone(),
                handle: m.handle.clone(),
                link,
                code,
                holdout: held,
                in_portfolio: true,
                cost: if held { 0 } else { m.cost },
                state: OfferState::Offered,
                state_offset: 0,
            });
        }
        for a in &holdout.from_rest {
            rows.push(repo::Offer {
                account: a.clone(),
                handle: handles.get(a).copied().unwrap_or_default().to_owned(),
                link: String::new(),
                code: String::new(),
                holdout: true,
                in_portfolio: false,
                cost: 0,
                state: OfferState::Offered,
                state_offset: 0,
            });
        }

        // The head before the links exist bounds the pre-treatment audience: nothing
        // at or below it can have been caused by an offer.
        let ingest = self.inner.ingest.clone();
        let head = retry_idempotent(&self.inner.retry, "GetLedgerInfo", || {
            let mut c = ingest.clone();
            async move { c.get_ledger_info(ipb::GetLedgerInfoRequest {}).await }
        })
        .await
        .map_err(Error::ingest)?
        .into_inner()
        .head_offset;
        let links: Vec<ipb::Link> = rows
            .iter()
            .filter(|r| !r.holdout)
            .flat_map(|r| [r.link.clone(), r.code.clone()].map(|l| (l, r.account.to_proto())))
            .map(|(link, owner)| ipb::Link {
                link,
                owner: Some(owner),
                campaign_id: c.row.id.clone(),
                attribution_window_secs: c.spec.attribution_window_secs,
                landing_url: c.spec.landing_url.clone(),
            })
            .collect();
        for chunk in links.chunks(5_000) {
            // Registering the same link to the same owner again is a no-op ("unchanged").
            let req = ipb::RegisterLinksRequest { links: chunk.to_vec() };
            retry_idempotent(&self.inner.retry, "RegisterLinks", || {
                let (mut c, r) = (ingest.clone(), req.clone());
                async move { c.register_links(r).await }
            })
            .await
            .map_err(Error::ingest)?;
        }
        repo::record_offers(&self.inner.db, &brand.0, &c.row.id, &rows, seed, head).await.map_err(|e| match e {
            lift_store::Error::Conflict(m) => Error::AlreadyExists(m),
            e => Error::Store(e),
        })?;
        tracing::info!(campaign = %c.row.id, offers = rows.iter().filter(|r| !r.holdout).count(),
            holdout = rows.iter().filter(|r| r.holdout).count(), seed, "offers issued");
        Ok(pb::CreateOffersResponse {
            offers: rows.iter().filter(|r| r.in_portfolio).map(super::lifecycle::offer_to_proto).collect(),
            holdout: rows.iter().filter(|r| r.holdout).map(|r| r.account.to_proto()).collect(),
            holdout_seed: seed,
            control_group: rows.iter().filter(|r| r.holdout && r.in_portfolio).map(|r| r.account.to_proto()).collect(),
        })
    }

    /// A creator's tracking link and code: derived from campaign and account, so
    /// a retried `CreateOffers` registers the same ones (ingestion treats that as
    /// unchanged) instead of orphaning the first attempt's.
    pub(super) fn tracking(&self, campaign: &str, account: &AccountId, handle: &str) -> (String, String) {
        let d = digest(&[campaign, &account.network, &account.id]);
        let link = format!("{}/{}", self.inner.cfg.link_base.trim_end_matches('/'), hex::encode(&d[..6]));
        let mut prefix: String =
            handle.chars().filter(char::is_ascii_alphanumeric).take(8).collect::<String>().to_ascii_uppercase();
        if prefix.is_empty() {
            prefix = "LIFT".to_owned();
        }
        let code = format!("{prefix}{}", hex::encode(&d[6..10]).to_ascii_uppercase());
        (link, code)
    }
}
