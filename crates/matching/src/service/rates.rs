//! Rate cards: `SetRateCard` stores what each creator asks the brand for one
//! perk (per currency); `GetRateCard` reads it back. `SelectPortfolio` prices
//! creators with the card in the campaign's currency.

use lift_domain::validation::is_known_currency;
use lift_domain::{AccountId, FieldViolation, time};
use lift_proto::convert::prelude::*;
use lift_proto::matching::v1 as pb;
use lift_store::rate_cards;

use super::Matching;
use crate::Error;
use crate::auth::BrandId;

/// Most rates one `SetRateCard` call may carry.
const MAX_RATES_PER_CALL: usize = 10_000;

impl Matching {
    pub async fn set_rate_card(
        &self,
        brand: &BrandId,
        req: &pb::SetRateCardRequest,
    ) -> Result<pb::SetRateCardResponse, Error> {
        let mut v = Vec::new();
        if !is_known_currency(&req.currency) {
            v.push(FieldViolation::new("currency", format!("{:?} is not a known ISO 4217 code", req.currency)));
        }
        if req.rates.len() > MAX_RATES_PER_CALL {
            return Err(Error::invalid(
                "rates",
                format!("has {} rates; the limit is {MAX_RATES_PER_CALL} per call", req.rates.len()),
            ));
        }
        if req.rates.is_empty() && !req.replace {
            v.push(FieldViolation::new("rates", "is empty (set replace to clear the card in this currency)"));
        }
        let mut rates = Vec::with_capacity(req.rates.len());
        for (i, r) in req.rates.iter().enumerate() {
            let account = AccountId::from_proto(r.account.as_ref(), &format!("rates[{i}].account"), &mut v);
            if r.rate <= 0 {
                v.push(FieldViolation::new(
                    format!("rates[{i}].rate"),
                    format!("is {}; it must be greater than 0", r.rate),
                ));
            }
            if let Some(a) = account {
                rates.push((a, r.rate));
            }
        }
        if !v.is_empty() {
            return Err(Error::Invalid(v));
        }
        let total =
            rate_cards::set_rates(&self.inner.db, &brand.0, &req.currency, &rates, req.replace, time::now()).await?;
        tracing::info!(brand = %brand, currency = %req.currency, stored = rates.len(), total, "rate card updated");
        Ok(pb::SetRateCardResponse { stored: rates.len() as u32, total })
    }

    pub async fn get_rate_card(
        &self,
        brand: &BrandId,
        req: &pb::GetRateCardRequest,
    ) -> Result<pb::GetRateCardResponse, Error> {
        if !req.currency.is_empty() && !is_known_currency(&req.currency) {
            return Err(Error::invalid("currency", format!("{:?} is not a known ISO 4217 code", req.currency)));
        }
        let currency = (!req.currency.is_empty()).then_some(req.currency.as_str());
        let rates = rate_cards::rates(&self.inner.db, &brand.0, currency).await?;
        Ok(pb::GetRateCardResponse {
            rates: rates
                .into_iter()
                .map(|r| pb::RateCardEntry {
                    account: Some(r.account.to_proto()),
                    rate: r.rate,
                    currency: r.currency,
                    updated_at: Some(lift_proto::convert::to_timestamp(r.updated_at)),
                })
                .collect(),
        })
    }
}
