//! The page shell (one stylesheet, inline; printable), errors as pages, and the
//! number formatting every page shares.

use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use tonic::Code;

const STYLE: &str = r#"
:root { --ink:#1b1b1b; --muted:#555; --line:#888; --accent:#0b4f8a; --bad:#8a1b0b; --paper:#fff; }
* { box-sizing: border-box; }
body { font: 16px/1.5 system-ui, sans-serif; color: var(--ink); background: var(--paper); margin: 0; }
header { border-bottom: 2px solid var(--ink); padding: .5rem 1.5rem; display: flex; gap: 1.5rem; align-items: center; flex-wrap: wrap; }
header .brand { font-weight: 700; font-size: 1.2rem; text-decoration: none; color: var(--ink); }
header nav a { margin-right: 1rem; color: var(--accent); }
header form { margin-left: auto; }
main { padding: 1rem 1.5rem 3rem; max-width: 72rem; }
h1 { font-size: 1.6rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .5rem; border-bottom: 1px solid var(--line); }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border: 1px solid var(--line); padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.muted { color: var(--muted); }
.pass { font-weight: 600; }
.fail { font-weight: 600; color: var(--bad); }
.note { border-left: 4px solid var(--line); padding: .25rem .75rem; margin: .75rem 0; background: #f6f6f6; }
.nodata { font-style: italic; }
.flag { border: 2px dashed var(--bad); padding: .5rem .75rem; margin: .5rem 0; }
figure { margin: .5rem 0 1rem; }
figcaption { font-size: .9rem; color: var(--muted); }
svg text { font: 12px system-ui, sans-serif; fill: var(--ink); }
label { display: block; margin: .5rem 0 .2rem; font-weight: 600; }
input[type=text], input[type=password] { font: inherit; padding: .35rem; width: 28rem; max-width: 100%; }
button { font: inherit; padding: .35rem .9rem; }
a { color: var(--accent); }
@media print { header nav, header form, button { display: none; } body { font-size: 11pt; } a { color: var(--ink); } }
"#;

/// A whole page: title, navigation (with a sign-out button when signed in) and body.
pub fn page(title: &str, signed_in: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Lift" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a.brand href="/" { "Lift" }
                    @if signed_in {
                        nav aria-label="Main" {
                            a href="/creator" { "Creator" }
                            a href="/campaigns" { "Campaigns" }
                            a href="/model" { "Model" }
                        }
                        form method="post" action="/logout" { button type="submit" { "Sign out" } }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// What a handler answers when a call fails: the service's word, as a page.
#[derive(Debug)]
pub enum PageError {
    /// No key (or the services refused it as unknown): to the login form.
    SignIn {
        next: String,
        why: Option<String>,
    },
    Status(tonic::Status),
    BadRequest(String),
}

impl From<tonic::Status> for PageError {
    fn from(s: tonic::Status) -> Self {
        PageError::Status(s)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (code, title, text) = match self {
            PageError::SignIn { next, why } => {
                let mut to = format!("/login?next={}", encode(&next));
                if let Some(w) = why {
                    to.push_str(&format!("&why={}", encode(&w)));
                }
                return Redirect::to(&to).into_response();
            }
            PageError::BadRequest(m) => (StatusCode::BAD_REQUEST, "That request is not valid", m),
            PageError::Status(s) => match s.code() {
                Code::Unauthenticated => {
                    let why = format!("The services refused the key: {}", s.message());
                    return PageError::SignIn { next: "/".into(), why: Some(why) }.into_response();
                }
                Code::PermissionDenied => (StatusCode::FORBIDDEN, "Your key may not see this", s.message().to_owned()),
                Code::NotFound => (StatusCode::NOT_FOUND, "Not found", s.message().to_owned()),
                Code::InvalidArgument => (StatusCode::BAD_REQUEST, "That request is not valid", s.message().to_owned()),
                Code::FailedPrecondition | Code::AlreadyExists => {
                    (StatusCode::CONFLICT, "Not possible yet", s.message().to_owned())
                }
                Code::Unavailable | Code::DeadlineExceeded => {
                    (StatusCode::SERVICE_UNAVAILABLE, "A service is unavailable", s.message().to_owned())
                }
                _ => (StatusCode::BAD_GATEWAY, "A service failed", s.message().to_owned()),
            },
        };
        let body = page(
            title,
            true,
            html! {
                h1 { (title) }
                p role="alert" { (text) }
                p { a href="/" { "Back to the start" } }
            },
        );
        (code, [(header::CACHE_CONTROL, "no-store")], Html(body.into_string())).into_response()
    }
}

/// Unknown paths.
pub async fn not_found(uri: Uri) -> Response {
    let body =
        page("Not found", false, html! { h1 { "Not found" } p { "There is no page at " code { (uri.path()) } "." } });
    (StatusCode::NOT_FOUND, Html(body.into_string())).into_response()
}

/// Percent-encodes a query or path component.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A number with `digits` decimals and thin grouping left to the reader.
pub fn num(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    format!("{v:.digits$}")
}

/// A signed change, e.g. `+1.25` or `−0.50` (a real minus sign).
pub fn signed(v: f64, digits: usize) -> String {
    let s = format!("{:.digits$}", v.abs());
    if v < 0.0 && s.trim_start_matches(['0', '.']).is_empty() {
        return s;
    }
    if v < 0.0 { format!("−{s}") } else { format!("+{s}") }
}

/// Minor units of `currency` as a decimal amount, e.g. `450.00 EUR`.
pub fn money(minor: i64, currency: &str) -> String {
    format!(
        "{}{}.{:02} {currency}",
        if minor < 0 { "−" } else { "" },
        minor.unsigned_abs() / 100,
        minor.unsigned_abs() % 100
    )
}

/// A timestamp as `YYYY-MM-DD HH:MM UTC`.
pub fn when(t: Option<&lift_proto::Timestamp>) -> String {
    match t {
        Some(t) => {
            let (days, secs) = (t.seconds.div_euclid(86_400), t.seconds.rem_euclid(86_400));
            let (y, m, d) = lift_domain::time::civil(days);
            format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", secs / 3600, secs % 3600 / 60)
        }
        None => "unknown time".into(),
    }
}

/// `network:id`, with the handle when there is one.
pub fn account_label(a: Option<&lift_proto::ingest::v1::AccountRef>, handle: &str) -> String {
    let id = a.map(|a| format!("{}:{}", a.network, a.id)).unwrap_or_else(|| "unknown account".into());
    if handle.is_empty() { id } else { format!("{id} ({handle})") }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the formatting people read: signs with a real minus, no "−0.00", money
    /// from minor units, and percent-encoding of reserved characters.
    #[test]
    fn formats_numbers_for_people() {
        assert_eq!(signed(1.234, 2), "+1.23");
        assert_eq!(signed(-0.5, 2), "−0.50");
        assert_eq!(signed(-0.001, 2), "0.00");
        assert_eq!(money(4500, "EUR"), "45.00 EUR");
        assert_eq!(money(-5, "EUR"), "−0.05 EUR");
        assert_eq!(encode("a b/c?"), "a%20b%2Fc%3F");
        assert_eq!(num(f64::NAN, 1), "—");
        let t = lift_proto::Timestamp { seconds: 1_098_777_600 + 3_660, nanos: 0 };
        assert_eq!(when(Some(&t)), "2004-10-26 09:01 UTC");
        assert_eq!(when(Some(&lift_proto::Timestamp { seconds: 0, nanos: 0 })), "1970-01-01 00:00 UTC");
    }
}
