//! Signing in: the visitor pastes an API key, which the console keeps in an
//! HttpOnly, SameSite=Strict cookie and presents on every gRPC call it makes
//! for them. The console stores nothing: what a page shows is what the key may read.

use axum::extract::{Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use lift_proto::matching::v1::matching_service_client::MatchingServiceClient;
use lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use lift_runtime::client::{Channel, Credentials, with_credentials};
use maud::html;
use serde::Deserialize;

use crate::App;
use crate::layout::{PageError, page};

/// The cookie holding the visitor's key.
pub const COOKIE: &str = "lift_key";
/// Longest key accepted from the form (keys are 53 characters).
const MAX_KEY_LEN: usize = 128;

/// A signed-in visitor: their key, and clients that present it.
#[derive(Debug, Clone)]
pub struct Visitor {
    key: String,
    app: App,
}

impl Visitor {
    fn credentials(&self) -> Result<Credentials, PageError> {
        Credentials::api_key(&self.key).map_err(|_| PageError::SignIn {
            next: "/".into(),
            why: Some("that key cannot be sent as gRPC metadata".into()),
        })
    }

    pub fn scoring(&self) -> Result<ScoringServiceClient<Channel>, PageError> {
        Ok(ScoringServiceClient::new(with_credentials(self.app.scoring.clone(), self.credentials()?)))
    }

    pub fn matching(&self) -> Result<MatchingServiceClient<Channel>, PageError> {
        Ok(MatchingServiceClient::new(with_credentials(self.app.matching.clone(), self.credentials()?)))
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

impl FromRequestParts<App> for Visitor {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, PageError> {
        match cookie(&parts.headers, COOKIE) {
            Some(key) => Ok(Visitor { key, app: app.clone() }),
            None => {
                let next = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
                Err(PageError::SignIn { next, why: None })
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    why: Option<String>,
}

/// Only same-site paths are followed after signing in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

pub async fn login_form(Query(q): Query<LoginQuery>) -> Html<String> {
    let next = safe_next(q.next.as_deref());
    Html(
        page(
            "Sign in",
            false,
            html! {
                h1 { "Sign in to Lift" }
                @if let Some(why) = &q.why { p.note role="alert" { (why) } }
                p { "Paste the API key you were given. A creator's key shows that creator's own scores; "
                    "a brand's key shows that brand's campaigns. The key stays in this browser "
                    "(an HttpOnly cookie) and is sent only to Lift's services." }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    label for="key" { "API key" }
                    input #key type="password" name="key" autocomplete="off" required placeholder="lift_…";
                    p { button type="submit" { "Sign in" } }
                }
            },
        )
        .into_string(),
    )
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    key: String,
    #[serde(default)]
    next: Option<String>,
}

pub async fn login(State(app): State<App>, Form(f): Form<LoginForm>) -> Response {
    let key = f.key.trim();
    let valid = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Redirect::to("/login?why=That%20is%20not%20a%20Lift%20API%20key%20(lift_%E2%80%A6).").into_response();
    }
    let secure = if app.secure_cookie { "; Secure" } else { "" };
    let set = format!("{COOKIE}={key}; Path=/; HttpOnly; SameSite=Strict{secure}");
    let mut resp = Redirect::to(&safe_next(f.next.as_deref())).into_response();
    if let Ok(v) = HeaderValue::from_str(&set) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

pub async fn logout() -> Response {
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("lift_key=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    resp
}

/// The start page: where each kind of key goes.
pub async fn home(_v: Visitor) -> Html<String> {
    Html(
        page(
            "Start",
            true,
            html! {
                h1 { "Lift" }
                p { "Separate scores, each with its uncertainty — never one number." }
                ul {
                    li { a href="/creator" { "Creator page" } ": your five dimensions, their history, and why they changed (a creator key)." }
                    li { a href="/campaigns" { "Campaigns" } ": who qualifies and why, the portfolio, offers and the report (a brand key)." }
                    li { a href="/model" { "Model" } ": each dimension's published distribution and recalibrations." }
                }
            },
        )
        .into_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the cookie parser (several cookies, several headers, empty values) and
    /// that only same-site paths are followed after signing in.
    #[test]
    fn reads_the_key_cookie_and_refuses_open_redirects() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; lift_key=lift_abc"));
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("lift_abc"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("lift_key="));
        assert_eq!(cookie(&h, COOKIE), None);
        assert_eq!(safe_next(Some("/campaigns/c1")), "/campaigns/c1");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
