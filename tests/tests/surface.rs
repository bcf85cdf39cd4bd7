//! The gRPC surface as a client sees it: what reflection lists on each port (through
//! grpcurl, a real client), length bounds on every request string of every method, and
//! size limits answered RESOURCE_EXHAUSTED.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::{Buf, BufMut};
use lift_cli::stack::{Databases, Stack, StackOptions};
use lift_runtime::bounds;
use prost::Message as _;
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, Value};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic_types::StatusExt;

async fn start() -> anyhow::Result<Stack> {
    let cfg = lift_scoring::ScoringConfig { debounce: Duration::from_millis(20), ..Default::default() };
    let opts = StackOptions { auth: false, ..Default::default() };
    Stack::start_loopback_with(&Databases::in_memory(), cfg, opts).await
}

/// Pins truthful reflection: `grpcurl list` on each port shows exactly that port's
/// service, health and reflection — never a service the port would answer UNIMPLEMENTED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_only_the_ports_own_service() -> anyhow::Result<()> {
    let stack = start().await?;
    let r = async {
        // Ingestion's port also serves the privacy service (export and erasure of the ledger it owns),
        // matching's its privacy export (every row naming an account).
        for (addr, svc, also) in [
            (stack.ingest_addr, "lift.ingest.v1.IngestService", Some("lift.privacy.v1.PrivacyService")),
            (stack.scoring_addr, "lift.scoring.v1.ScoringService", None),
            (stack.matching_addr, "lift.matching.v1.MatchingService", Some("lift.matching.v1.MatchingPrivacyService")),
        ] {
            let out = tokio::process::Command::new("grpcurl")
                .args(["-plaintext", "-max-time", "10", &addr.to_string(), "list"])
                .output()
                .await
                .map_err(|e| anyhow::anyhow!("running grpcurl (scripts/test.sh puts it on PATH): {e}"))?;
            anyhow::ensure!(out.status.success(), "grpcurl list {addr}: {}", String::from_utf8_lossy(&out.stderr));
            let listed: BTreeSet<String> = String::from_utf8(out.stdout)?.lines().map(str::to_owned).collect();
            let want: BTreeSet<String> =
                lift_runtime::server::listed_services(svc).into_iter().chain(also).map(str::to_owned).collect();
            assert_eq!(listed, want, "{svc}'s port");
        }
        anyhow::Ok(())
    }
    .await;
    stack.stop().await?;
    r
}

/// Bytes in, bytes out: requests built as dynamic messages from the descriptors.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// Every string field reachable in `desc` (through nested messages, lists taking one
/// element), as the request that sets only it to `value` and the path the violation names.
fn one_long_field_each(desc: &MessageDescriptor, value: &str, depth: usize) -> Vec<(DynamicMessage, String)> {
    let mut out = Vec::new();
    for f in desc.fields() {
        let wrap = |v: Value| if f.is_list() { Value::List(vec![v]) } else { v };
        let path = if f.is_list() { format!("{}[0]", f.name()) } else { f.name().to_owned() };
        match f.kind() {
            Kind::String if !f.is_map() => {
                let mut m = DynamicMessage::new(desc.clone());
                m.set_field(&f, wrap(Value::String(value.to_owned())));
                out.push((m, path));
            }
            Kind::Message(inner) if depth < 3 && !f.is_map() => {
                for (child, child_path) in one_long_field_each(&inner, value, depth + 1) {
                    let mut m = DynamicMessage::new(desc.clone());
                    m.set_field(&f, wrap(Value::Message(child)));
                    out.push((m, format!("{path}.{child_path}")));
                }
            }
            _ => {}
        }
    }
    out
}

/// Pins the length bounds on every method: for each string field of each request (ids,
/// tokens, codes, names…), a 20,000-character value answers INVALID_ARGUMENT with a
/// `BadRequest` violation naming that field, and the answer never echoes the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_strings_answer_invalid_argument_on_every_method() -> anyhow::Result<()> {
    let stack = start().await?;
    let r = async {
        let long = "x".repeat(20_000);
        let mut checked = 0;
        let methods = bounds::checked_methods();
        assert!(methods.len() >= 15, "{} methods", methods.len());
        for m in methods {
            let service = m.parent_service().full_name().to_owned();
            let url = match service.as_str() {
                "lift.ingest.v1.IngestService" | "lift.privacy.v1.PrivacyService" => stack.ingest_url(),
                "lift.scoring.v1.ScoringService" => stack.scoring_url(),
                "lift.matching.v1.MatchingService" | "lift.matching.v1.MatchingPrivacyService" => stack.matching_url(),
                other => anyhow::bail!("unexpected service {other}"),
            };
            let path: http::uri::PathAndQuery = format!("/{service}/{}", m.name()).parse()?;
            for (msg, field) in one_long_field_each(&m.input(), &long, 0) {
                let mut grpc = tonic::client::Grpc::new(stack.channel(&url)?);
                grpc.ready().await?;
                let req = tonic::Request::new(msg.encode_to_vec());
                let status = if m.is_server_streaming() {
                    grpc.server_streaming(req, path.clone(), Raw).await.err()
                } else {
                    grpc.unary(req, path.clone(), Raw).await.err()
                };
                let Some(status) = status else { panic!("{path} with a long {field} succeeded") };
                assert_eq!(status.code(), Code::InvalidArgument, "{path} {field}: {status:?}");
                assert!(status.message().len() < 1_000 && !status.message().contains("xxxxxxxxxx"), "{path} echoes");
                let details = status.get_error_details();
                let bad = details.bad_request().map(|b| b.field_violations.clone()).unwrap_or_default();
                assert!(bad.iter().any(|v| v.field == field), "{path}: no violation for {field}: {bad:?}");
                checked += 1;
            }
        }
        assert!(checked >= 25, "only {checked} fields checked");
        anyhow::Ok(())
    }
    .await;
    stack.stop().await?;
    r
}
