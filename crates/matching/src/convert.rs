//! Conversions only matching needs: its answers' criteria verdicts, expected
//! outcomes and report totals, and the percentile filters it pushes down to
//! scoring. Those shared with other crates live in `lift_proto::convert`.

use lift_domain::campaign::{CriterionResult, Expected, PercentileFilter, Totals};
use lift_proto::convert::{CriterionProto, DimensionProto};
use lift_proto::matching::v1 as pb;
use lift_proto::scoring::v1 as spb;

pub(crate) trait CriterionResultProto {
    fn to_proto(&self) -> pb::CriterionResult;
}

impl CriterionResultProto for CriterionResult {
    fn to_proto(&self) -> pb::CriterionResult {
        pb::CriterionResult {
            criterion: Some(self.criterion.to_proto()),
            passed: self.passed,
            margin: self.margin,
            observed: self.observed,
            reason: self.reason.clone(),
        }
    }
}

pub(crate) trait ExpectedProto {
    fn to_proto(&self) -> pb::ExpectedOutcome;
}

impl ExpectedProto for Expected {
    fn to_proto(&self) -> pb::ExpectedOutcome {
        pb::ExpectedOutcome { expected: self.expected, lower: self.lower, upper: self.upper, unit: self.unit.clone() }
    }
}

pub(crate) trait TotalsProto {
    fn to_proto(&self) -> pb::OutcomeTotals;
}

impl TotalsProto for Totals {
    fn to_proto(&self) -> pb::OutcomeTotals {
        pb::OutcomeTotals {
            clicks: self.clicks,
            unique_visitors: self.unique_visitors,
            sessions: self.sessions,
            bounce_rate: self.bounce_rate(),
            conversions: self.conversions,
            value_minor: self.value_minor,
            cost_per_conversion: self.cost_per_conversion(),
            code_without_click: self.code_without_click,
        }
    }
}

pub(crate) fn percentile_filter_to_proto(f: &PercentileFilter) -> spb::PercentileFilter {
    spb::PercentileFilter {
        dimension: f.dimension.to_proto() as i32,
        topic: f.topic.clone().unwrap_or_default(),
        min_percentile: f.min_percentile,
    }
}
