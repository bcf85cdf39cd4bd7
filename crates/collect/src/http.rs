//! The HTTP surface: routes, handlers, serving.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lift_proto::ingest::v1 as pb;
use lift_runtime::Shutdown;
use lift_store::DatabaseConnection;
use tokio::net::TcpListener;

use crate::location::Location;
use crate::resolve::Lookup;
use crate::sessions::{Beacon, Refused};
use crate::webhook::{self, GenericOrder, Order, ShopifyOrder};
use crate::{Collector, Error, Inner, agent, is_token, ordered_id};

/// The collector's routes (for `serve`, or for embedding in tests).
pub fn router(c: Collector) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/lift.js", get(script))
        .route("/b", post(beacon))
        .route("/webhooks/{brand}/orders", post(generic_order))
        .route("/webhooks/{brand}/shopify/orders-create", post(shopify_order))
        .route("/{code}", get(redirect))
        .fallback(|| async { not_found() })
        .with_state(c)
}

/// Serves the collector on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, c: Collector, shutdown: Shutdown) -> Result<(), Error> {
    let app = router(c).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.wait().await }).await.map_err(Error::Serve)
}

/// Spools one event; a full spool (or a failing disk) is logged and counted by the spool.
pub(crate) fn spool_event(inner: &Inner, event: &pb::Event) -> bool {
    match inner.spool.push(event) {
        Ok(()) => true,
        Err(crate::spool::SpoolError::Full(_)) => false,
        Err(e) => {
            tracing::error!(error = %e, "spool: writing an event failed; it is lost");
            metrics::counter!("lift_collect_spool_write_errors_total").increment(1);
            false
        }
    }
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{text}</p></body></html>"
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

fn not_found() -> Response {
    page(StatusCode::NOT_FOUND, "Link not found", "This link does not exist or is no longer active.")
}

async fn script(State(c): State<Collector>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        c.inner.script.clone(),
    )
        .into_response()
}

/// `GET /{code}` (and `HEAD`, which axum routes here too).
async fn redirect(
    State(c): State<Collector>,
    Path(code): Path<String>,
    method: Method,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let inner = &c.inner;
    if !is_token(&code, 1, 64) {
        return not_found();
    }
    let key = format!("{}/{code}", inner.cfg.link_base.trim_end_matches('/'));
    let link = match inner.resolver.resolve(&key).await {
        Lookup::Found(l) => l,
        Lookup::NotFound => return not_found(),
        Lookup::Unavailable => {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again shortly",
                "This link cannot be looked up right now. Please try again in a moment.",
            );
        }
    };
    let landing = match (link.landing_url.as_str(), inner.cfg.default_landing_url.as_deref()) {
        ("", None) => {
            return page(StatusCode::NOT_FOUND, "No destination", "This link has no destination configured.");
        }
        ("", Some(d)) => d,
        (l, _) => l,
    };
    let existing = cookie(&headers, &inner.cfg.cookie_name).filter(|v| is_token(v, 16, 64));
    let visitor = existing.clone().unwrap_or_else(|| ordered_id(12));
    let verdict = agent::classify(&method, &headers);
    // Bursts are judged per visitor; without a cookie, per address and user agent (hashed, in
    // memory only, never stored), so visitors sharing an address are told apart where they can be.
    let burst_key = existing.as_ref().map_or_else(
        || {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            peer.ip().hash(&mut h);
            headers.get(header::USER_AGENT).map(HeaderValue::as_bytes).hash(&mut h);
            format!("a:{:016x}", h.finish())
        },
        |v| format!("v:{v}"),
    );
    let burst = verdict.not_counted.is_none() && inner.bursts.is_burst(&burst_key, Instant::now());
    let not_counted = verdict.not_counted.or(burst.then_some("burst from one visitor"));
    let location = link.location.get_or_init(|| Location::new(landing, &link.campaign_id, &code)).with(&visitor);
    let event = pb::Event {
        event_id: format!("clk-{}", ordered_id(8)),
        source: inner.cfg.source.clone(),
        occurred_at: Some(inner.now_ts()),
        kind: Some(pb::event::Kind::LinkClick(pb::LinkClick {
            link: link.link.clone(),
            visitor_id: visitor.clone(),
            landing: landing.to_owned(),
            agent_class: verdict.class.to_owned(),
            not_counted: not_counted.unwrap_or_default().to_owned(),
        })),
    };
    spool_event(inner, &event);
    metrics::counter!("lift_collect_clicks_total", "counted" => if not_counted.is_none() { "yes" } else { "no" })
        .increment(1);
    let mut resp = (StatusCode::FOUND, [(header::CACHE_CONTROL, "no-store")]).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin"));
    if existing.is_none() {
        let secure = if inner.cfg.cookie_secure { "; Secure" } else { "" };
        let set = format!(
            "{}={visitor}; Max-Age={}; Path=/; HttpOnly; SameSite=Lax{secure}",
            inner.cfg.cookie_name,
            inner.cfg.cookie_max_age.as_secs()
        );
        if let Ok(v) = HeaderValue::from_str(&set) {
            h.insert(header::SET_COOKIE, v);
        }
    }
    resp
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

/// `POST /b`: one beacon (JSON in a text/plain body, as `sendBeacon` sends strings).
async fn beacon(State(c): State<Collector>, body: Bytes) -> Response {
    let inner = &c.inner;
    if body.len() > 4_096 {
        return (StatusCode::PAYLOAD_TOO_LARGE, "beacon larger than 4096 bytes").into_response();
    }
    let b: Beacon = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("beacon: {e}")).into_response(),
    };
    if !is_token(&b.l, 1, 64) {
        return (StatusCode::BAD_REQUEST, "l: tracking code must be 1-64 letters, digits, - or _").into_response();
    }
    let link = format!("{}/{}", inner.cfg.link_base.trim_end_matches('/'), b.l);
    match inner.sessions.observe(&b, link, Instant::now()) {
        Ok(Some(decided)) => {
            spool_event(inner, &decided.to_event(&inner.cfg.source, inner.now_ts()));
        }
        Ok(None) => {}
        Err(Refused::Invalid(why)) => return (StatusCode::BAD_REQUEST, why).into_response(),
        Err(Refused::TooManyOpen) => {
            tracing::warn!("beacon refused: too many open sessions");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Brands' webhook secrets, cached for a short time.
#[derive(Debug)]
pub(crate) struct SecretCache {
    db: DatabaseConnection,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Option<String>)>>,
}

impl SecretCache {
    pub(crate) fn new(db: DatabaseConnection, ttl: Duration) -> Self {
        Self { db, ttl, cache: Mutex::new(HashMap::new()) }
    }

    async fn get(&self, brand: &str) -> Result<Option<String>, lift_store::Error> {
        if let Some((at, s)) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(brand)
            && at.elapsed() < self.ttl
        {
            return Ok(s.clone());
        }
        let s = lift_store::webhook_secrets::get(&self.db, brand).await?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(brand.to_owned(), (Instant::now(), s.clone()));
        Ok(s)
    }
}

/// Checks the signature; `Err` is the response to send.
async fn authenticate(inner: &Inner, brand: &str, body: &[u8], signature: Option<Vec<u8>>) -> Result<(), Response> {
    let unauthorized = || (StatusCode::UNAUTHORIZED, "unknown brand or bad signature").into_response();
    if !is_token(brand, 1, 128) {
        return Err(unauthorized());
    }
    let secret = match inner.secrets.get(brand).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(unauthorized()),
        Err(e) => {
            tracing::error!(error = %e, "reading a webhook secret failed");
            return Err((StatusCode::SERVICE_UNAVAILABLE, "try again later").into_response());
        }
    };
    match signature {
        Some(sig) if webhook::verify(secret.as_bytes(), body, &sig) => Ok(()),
        _ => {
            metrics::counter!("lift_collect_webhook_unauthorized_total").increment(1);
            tracing::warn!(brand, "order webhook with a bad or missing signature refused");
            Err(unauthorized())
        }
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /webhooks/{brand}/orders`, signed `X-Lift-Signature: sha256=<hex>`.
async fn generic_order(
    State(c): State<Collector>,
    Path(brand): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sig = header_str(&headers, "x-lift-signature").and_then(webhook::generic_signature);
    if let Err(r) = authenticate(&c.inner, &brand, &body, sig).await {
        return r;
    }
    match serde_json::from_slice::<GenericOrder>(&body) {
        Ok(o) if !o.order_id.is_empty() => record_order(&c.inner, &brand, o.into()),
        Ok(_) => (StatusCode::UNPROCESSABLE_ENTITY, "order_id is required").into_response(),
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, format!("order: {e}")).into_response(),
    }
}

/// `POST /webhooks/{brand}/shopify/orders-create`, signed `X-Shopify-Hmac-Sha256: <base64>`.
async fn shopify_order(
    State(c): State<Collector>,
    Path(brand): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sig = header_str(&headers, "x-shopify-hmac-sha256").and_then(webhook::shopify_signature);
    if let Err(r) = authenticate(&c.inner, &brand, &body, sig).await {
        return r;
    }
    if let Some(topic) = header_str(&headers, "x-shopify-topic")
        && topic != "orders/create"
    {
        return (StatusCode::OK, Json(serde_json::json!({"status": "ignored", "reason": "not orders/create"})))
            .into_response();
    }
    match serde_json::from_slice::<ShopifyOrder>(&body).map(ShopifyOrder::into_order) {
        Ok(Some(o)) => record_order(&c.inner, &brand, o),
        Ok(None) => (StatusCode::UNPROCESSABLE_ENTITY, "order id is missing").into_response(),
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, format!("order: {e}")).into_response(),
    }
}

fn record_order(inner: &Inner, brand: &str, o: Order) -> Response {
    let event_id = o.event_id(brand);
    let Some(event) = o.to_event(brand, &inner.cfg.source, inner.now_ts()) else {
        return Json(serde_json::json!({
            "status": "ignored",
            "reason": "the order carries neither a discount code nor a visitor id",
        }))
        .into_response();
    };
    if spool_event(inner, &event) {
        // The ledger decides duplicates (a replay carries the same event id).
        (StatusCode::ACCEPTED, Json(serde_json::json!({"status": "accepted", "event_id": event_id}))).into_response()
    } else {
        // Not recorded: let the shop retry later.
        (StatusCode::SERVICE_UNAVAILABLE, "the collector cannot record orders right now").into_response()
    }
}
