//! Length bounds on every string a Lift request carries, checked before a handler
//! runs, from the contracts' own descriptors: no method can forget one.
//!
//! Identifiers (ids, tokens, codes, links, versions, names of networks and topics)
//! are at most [`MAX_ID_BYTES`]; any other string at most [`MAX_TEXT_BYTES`]. A
//! request past a bound answers INVALID_ARGUMENT with a `BadRequest` violation per
//! field that says how long the value was — never the value itself. Services keep
//! their own, tighter, domain bounds (`lift_domain`); these are the ceiling.
//!
//! Client streams (`IngestStream`) and `IngestBatch` carry events, which ingestion
//! bounds field by field per event (`lift_domain::event`) and whose size makes a
//! second decode costly; they pass unchecked here.

use std::sync::LazyLock;

use lift_domain::FieldViolation;
use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, MethodDescriptor, Value};

/// Longest identifier, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Longest free-text string (names, descriptions), in bytes.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;
/// Requests larger than this are not decoded here; tonic's own limit applies.
pub const MAX_CHECKED_BYTES: usize = 4 * 1024 * 1024;

/// Methods whose requests are events, bounded per event by ingestion.
const UNCHECKED: &[&str] = &["/lift.ingest.v1.IngestService/IngestBatch"];

static POOL: LazyLock<Option<DescriptorPool>> =
    LazyLock::new(|| DescriptorPool::decode(lift_proto::FILE_DESCRIPTOR_SET).ok());

/// The method a request path names, when its request is checked here.
pub fn checked_method(path: &str) -> Option<MethodDescriptor> {
    if UNCHECKED.contains(&path) {
        return None;
    }
    let (service, method_name) = path.strip_prefix('/')?.split_once('/')?;
    let m = method(service, method_name)?;
    (!m.is_client_streaming()).then_some(m)
}

/// A Lift method by its service's full name and its name.
pub fn method(service: &str, method: &str) -> Option<MethodDescriptor> {
    POOL.as_ref()?.get_service_by_name(service)?.methods().find(|m| m.name() == method)
}

/// Whether a field holds an identifier (bounded by [`MAX_ID_BYTES`]) rather than text.
pub fn is_identifier(field: &FieldDescriptor) -> bool {
    let name = field.name();
    name == "id"
        || name.ends_with("_id")
        || name.ends_with("_ids")
        || name.ends_with("token")
        || name.ends_with("code")
        || name.ends_with("version")
        || matches!(name, "link" | "links" | "network" | "topic" | "topics" | "currency" | "source" | "kind" | "metric")
}

/// Every string in `msg` (nested messages and lists included) past its bound.
pub fn violations(msg: &DynamicMessage) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    walk(msg, "", &mut out);
    out
}

fn walk(msg: &DynamicMessage, prefix: &str, out: &mut Vec<FieldViolation>) {
    for (field, value) in msg.fields() {
        let path = if prefix.is_empty() { field.name().to_owned() } else { format!("{prefix}.{}", field.name()) };
        match value {
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_value(&field, item, &format!("{path}[{i}]"), out);
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries {
                    if let prost_reflect::MapKey::String(key) = k {
                        check_str(key.len(), MAX_ID_BYTES, &format!("{path} key"), out);
                    }
                    check_value(&field, v, &path, out);
                }
            }
            v => check_value(&field, v, &path, out),
        }
    }
}

fn check_value(field: &FieldDescriptor, value: &Value, path: &str, out: &mut Vec<FieldViolation>) {
    match value {
        Value::String(s) => {
            let max = if is_identifier(field) { MAX_ID_BYTES } else { MAX_TEXT_BYTES };
            check_str(s.len(), max, path, out);
        }
        Value::Message(m) => walk(m, path, out),
        _ => {}
    }
}

fn check_str(len: usize, max: usize, path: &str, out: &mut Vec<FieldViolation>) {
    if len > max {
        let what = if max == MAX_ID_BYTES { "an identifier" } else { "a text field" };
        out.push(FieldViolation::new(path, format!("is {len} bytes long; {what} is at most {max} bytes")));
    }
}

/// Decodes one uncompressed gRPC frame's message for `method`; `None` when it does not
/// decode (tonic then answers the malformed request itself).
pub fn decode(method: &MethodDescriptor, message: &[u8]) -> Option<DynamicMessage> {
    DynamicMessage::decode(method.input(), message).ok()
}

/// Every method checked here, with its request's string fields (for tests and docs).
pub fn checked_methods() -> Vec<MethodDescriptor> {
    let Some(pool) = POOL.as_ref() else { return Vec::new() };
    pool.services()
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .filter(|m| checked_method(&format!("/{}/{}", m.parent_service().full_name(), m.name())).is_some())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::Kind;

    /// Pins that the ingest event RPCs and client streams are left to ingestion, and
    /// every other Lift method's request is checked.
    #[test]
    fn which_methods_are_checked() {
        assert!(checked_method("/lift.ingest.v1.IngestService/IngestBatch").is_none());
        assert!(checked_method("/lift.ingest.v1.IngestService/IngestStream").is_none());
        assert!(checked_method("/lift.matching.v1.MatchingService/GetCampaign").is_some());
        assert!(checked_method("/lift.ingest.v1.IngestService/RegisterLinks").is_some());
        assert!(checked_method("/grpc.health.v1.Health/Check").is_none());
        assert!(checked_method("nonsense").is_none());
        assert!(checked_methods().len() >= 15, "{}", checked_methods().len());
    }

    /// Pins the violation: the field path (through lists), the length, the bound — and
    /// never the value.
    #[test]
    fn long_strings_are_named_not_echoed() {
        let Some(m) = checked_method("/lift.ingest.v1.IngestService/RegisterLinks") else {
            panic!("RegisterLinks is checked")
        };
        let mut msg = DynamicMessage::new(m.input());
        let link_desc = m.input().get_field_by_name("links").map(|f| f.kind());
        let Some(Kind::Message(link_desc)) = link_desc else { panic!("links is a message list") };
        let mut ok = DynamicMessage::new(link_desc.clone());
        ok.set_field_by_name("link", Value::String("abc".into()));
        let mut bad = DynamicMessage::new(link_desc);
        bad.set_field_by_name("campaign_id", Value::String("x".repeat(20_000)));
        msg.set_field_by_name("links", Value::List(vec![Value::Message(ok), Value::Message(bad)]));
        let v = violations(&msg);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].field, "links[1].campaign_id");
        assert!(v[0].description.contains("20000 bytes") && v[0].description.contains("256"), "{}", v[0]);
        assert!(!v[0].description.contains("xxxx"));
    }
}
