//! The model page: each dimension's published distribution (what a percentile is
//! measured against) and, after a recalibration, how old values map to new ones.

use axum::response::Html;
use lift_domain::Dimension;
use lift_proto::convert::prelude::*;
use lift_proto::scoring::v1 as spb;
use maud::html;

use crate::chart;
use crate::layout::{PageError, num, page};
use crate::session::Visitor;

/// `/model`.
pub async fn page_handler(v: Visitor) -> Result<Html<String>, PageError> {
    let m = v.scoring()?.get_model(spb::GetModelRequest {}).await?.into_inner();
    let mut params: Vec<(&String, &f64)> = m.parameters.iter().collect();
    params.sort_by(|a, b| a.0.cmp(b.0));
    let body = html! {
        h1 { "Model " (m.model_version) }
        p.muted { (m.accounts) " accounts scored in run " (m.latest_run_id) ", as of ledger offset " (m.as_of_offset) "." }
        @if m.latest_run_id == 0 { p.nodata { "No data: scoring has not completed a run yet." } }
        @for d in Dimension::ALL {
            @let dist = m.distributions.iter().find(|x| x.dimension == d.to_proto() as i32);
            h2 { (d.name()) }
            @match dist {
                Some(dist) if !dist.quantiles.is_empty() => {
                    @let q: Vec<(f64, f64)> = dist.quantiles.iter().map(|p| (p.quantile, p.value)).collect();
                    (chart::histogram(&format!("Distribution of {} over {} accounts", d.name(), dist.accounts), &q, dist.accounts))
                    details {
                        summary { "Published quantiles" }
                        table { thead { tr { th scope="col" { "Quantile" } th scope="col" { "Value" } } }
                            tbody { @for p in &dist.quantiles { tr { td.num { (num(p.quantile * 100.0, 1)) " %" } td.num { (num(p.value, 2)) } } } } }
                    }
                }
                _ => { p.nodata { "No data: no distribution is published for " (d.name()) " (no account has evidence for it)." } }
            }
            @for r in m.recalibrations.iter().filter(|r| r.dimension == d.to_proto() as i32) {
                @let pairs: Vec<(f64, f64)> = r.old_quantiles.iter().zip(&r.new_quantiles).map(|(o, n)| (o.value, n.value)).collect();
                h3 { "Recalibration " (r.from_version) " → " (r.to_version) }
                p { "A value under the old model maps to the value at the same quantile under the new one; "
                    "campaign rules by value are translated this way, rules by percentile keep their meaning." }
                @if pairs.is_empty() { p.nodata { "No data: the mapping has no points." } }
                @else {
                    (chart::xy_map(&format!("{}: old value to new value", d.name()), &pairs, &format!("value under {}", r.from_version), &format!("value under {}", r.to_version)))
                    table { thead { tr { th scope="col" { "Quantile" } th scope="col" { "Old value" } th scope="col" { "New value" } } }
                        tbody { @for (o, n) in r.old_quantiles.iter().zip(&r.new_quantiles) { tr { td.num { (num(o.quantile * 100.0, 1)) " %" } td.num { (num(o.value, 2)) } td.num { (num(n.value, 2)) } } } } }
                }
            }
        }
        @if m.recalibrations.is_empty() { h2 { "Recalibrations" } p { "None: the model has not changed since scores were first published." } }
        h2 { "Parameters" }
        table { tbody { @for (k, v) in params { tr { th scope="row" { (k) } td.num { (v) } } } } }
    };
    Ok(Html(page("Model", true, body).into_string()))
}
