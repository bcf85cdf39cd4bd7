//! Threshold translation: a campaign's absolute thresholds moved across a
//! scoring model change, so "value ≥ 70" keeps meaning the same share of
//! accounts on the new model's scale.

use lift_domain::campaign::{self as rules, Criterion, Threshold};
use lift_proto::convert::prelude::*;
use lift_proto::scoring::v1 as spb;
use lift_runtime::client::retry_idempotent;

use super::Matching;
use crate::Error;

impl Matching {
    /// The campaign's absolute thresholds moved through scoring's published old→new mapping.
    pub(super) async fn translate(
        &self,
        criteria: &[Criterion],
        from: &str,
        to: &str,
    ) -> Result<Vec<Criterion>, Error> {
        let model = retry_idempotent(&self.inner.retry, "GetModel", || {
            let mut c = self.inner.scoring.clone();
            async move { c.get_model(spb::GetModelRequest {}).await }
        })
        .await
        .map_err(Error::scoring)?
        .into_inner();
        let mut out = Vec::new();
        for c in criteria {
            let Threshold::MinValue(v) = c.threshold else { continue };
            let mapping = model
                .recalibrations
                .iter()
                .find(|m| m.dimension == c.dimension.to_proto() as i32 && m.from_version == from && m.to_version == to);
            let Some(m) = mapping else {
                tracing::warn!(dimension = %c.dimension, from, to, "no published mapping; threshold kept as is");
                continue;
            };
            let pts = |q: &[spb::QuantilePoint]| q.iter().map(|p| (p.quantile, p.value)).collect::<Vec<_>>();
            if let Some(nv) = rules::translate_value(v, &pts(&m.old_quantiles), &pts(&m.new_quantiles)) {
                out.push(Criterion { threshold: Threshold::MinValue(nv.clamp(0.0, 100.0)), ..c.clone() });
            }
        }
        Ok(out)
    }
}
