//! The link collector from the command line: brands' webhook secrets, and simulated
//! outcomes sent to a collector over HTTP the way browsers and shops send them (`lift demo`).

use std::net::SocketAddr;

use anyhow::{Context, bail};
use lift_proto::ingest::v1 as ipb;
use rand::Rng;

/// Creates (or rotates) a brand's webhook secret and returns it.
pub async fn create_webhook_secret(db: &sea_orm::DatabaseConnection, brand_id: &str) -> anyhow::Result<String> {
    if !lift_store::webhook_secrets::brand_exists(db, brand_id).await? {
        bail!("no brand {brand_id:?} in this database (`lift brands create NAME` makes one)");
    }
    let mut bytes = [0u8; 24];
    rand::rng().fill(&mut bytes[..]);
    let secret = format!("whsec_{}", hex::encode(bytes));
    lift_store::webhook_secrets::set(db, brand_id, &secret, lift_domain::time::now()).await?;
    Ok(secret)
}

/// What [`replay_over_http`] sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    pub clicks: u64,
    pub sessions: u64,
    pub orders: u64,
}

impl Replayed {
    /// Ledger events these requests make (one each).
    pub fn events(&self) -> u64 {
        self.clicks + self.sessions + self.orders
    }
}

/// A desktop browser's user agent, for simulated visitors.
const VISITOR_UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// Sends simulated outcome events to the collector at `addr` the way browsers and a shop do:
/// a click is `GET /{code}` carrying the visitor's cookie, a page session is the beacon's
/// `POST /b` (two page views when it stayed), a conversion is an order webhook signed with the
/// brand's `secret`. Other events are skipped. Fails on the first request the collector refuses.
pub async fn replay_over_http(
    addr: SocketAddr,
    link_base: &str,
    brand_id: &str,
    secret: &str,
    events: &[ipb::Event],
) -> anyhow::Result<Replayed> {
    use lift_collect::client::request;
    let prefix = format!("{}/", link_base.trim_end_matches('/'));
    let code_of = |link: &str| link.strip_prefix(&prefix).map(str::to_owned);
    let mut n = Replayed::default();
    for e in events {
        match &e.kind {
            Some(ipb::event::Kind::LinkClick(c)) => {
                let code = code_of(&c.link).with_context(|| format!("link {} is not under {prefix}", c.link))?;
                let cookie = format!("lift_vid={}", c.visitor_id);
                let r =
                    request(addr, "GET", &format!("/{code}"), &[("User-Agent", VISITOR_UA), ("Cookie", &cookie)], b"")
                        .await?;
                if r.status != 302 {
                    bail!("GET /{code} answered {}: {}", r.status, r.body);
                }
                n.clicks += 1;
            }
            Some(ipb::event::Kind::PageSession(s)) => {
                let code = code_of(&s.link).with_context(|| format!("link {} is not under {prefix}", s.link))?;
                let beacon = serde_json::json!({
                    "s": format!("s-{}", e.event_id), "v": s.visitor_id, "l": code,
                    "d": s.dwell_ms, "p": if s.bounced { 1 } else { 2 },
                });
                let r = request(addr, "POST", "/b", &[("Content-Type", "text/plain")], beacon.to_string().as_bytes())
                    .await?;
                if r.status != 204 {
                    bail!("beacon answered {}: {}", r.status, r.body);
                }
                n.sessions += 1;
            }
            Some(ipb::event::Kind::Conversion(c)) => {
                let order = serde_json::json!({
                    "order_id": c.order_id, "value_minor": c.value_minor, "currency": c.currency,
                    "code": (!c.code.is_empty()).then_some(&c.code),
                    "visitor_id": (!c.visitor_id.is_empty()).then_some(&c.visitor_id),
                    "customer": c.customer.as_ref().map(|a| serde_json::json!({"network": a.network, "id": a.id})),
                })
                .to_string();
                let sig =
                    format!("sha256={}", hex::encode(lift_collect::webhook::sign(secret.as_bytes(), order.as_bytes())));
                let path = format!("/webhooks/{brand_id}/orders");
                let r = request(
                    addr,
                    "POST",
                    &path,
                    &[("X-Lift-Signature", &sig), ("Content-Type", "application/json")],
                    order.as_bytes(),
                )
                .await?;
                if r.status != 202 {
                    bail!("order webhook answered {}: {}", r.status, r.body);
                }
                n.orders += 1;
            }
            _ => {}
        }
    }
    Ok(n)
}
