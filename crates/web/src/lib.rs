//! Lift's web console: server-rendered pages that call the three services over
//! gRPC with the visitor's own API key (kept in an HttpOnly, SameSite=Strict
//! cookie), so a page shows exactly what that key may read.
//!
//! - [`session`]: the login form, the cookie, and per-visitor gRPC clients;
//! - [`creator`]: a creator's own scores, history, explanations, flags and evidence;
//! - [`brand`]: campaigns, eligibility, shortlist, portfolio and the report;
//! - [`offers`]: issuing a campaign's offers and reading them back (links, codes,
//!   states, the control group);
//! - [`model`]: published distributions and recalibration maps;
//! - [`chart`]: the inline SVG charts (line, histogram, bars, interval), readable
//!   without colour;
//! - [`layout`]: the page shell, styles and number formatting.

pub mod brand;
pub mod chart;
pub mod creator;
pub mod layout;
pub mod model;
pub mod offers;
pub mod session;
pub mod standing;

use axum::Router;
use axum::routing::{get, post};
use lift_runtime::Shutdown;
use lift_runtime::client::{ClientOptions, endpoint};
use lift_runtime::tls::ClientTls;
use tokio::net::TcpListener;

/// Where the console finds the services, and how it talks to them.
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub scoring_url: String,
    pub matching_url: String,
    /// What the services' certificates are trusted by (https URLs).
    pub tls: Option<ClientTls>,
    /// Mark the key cookie `Secure` (when the console is reached over https).
    pub secure_cookie: bool,
}

/// Shared state of every handler: one lazily-connected channel per service.
#[derive(Debug, Clone)]
pub struct App {
    scoring: tonic::transport::Channel,
    matching: tonic::transport::Channel,
    secure_cookie: bool,
}

/// Errors starting or running the console.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] lift_runtime::Error),
    #[error("serving the console: {0}")]
    Io(#[from] std::io::Error),
}

impl App {
    pub fn new(cfg: &WebConfig) -> Result<Self, Error> {
        let opts = ClientOptions { tls: cfg.tls.clone(), ..ClientOptions::default() };
        Ok(Self {
            scoring: endpoint(&cfg.scoring_url, &opts)?.connect_lazy(),
            matching: endpoint(&cfg.matching_url, &opts)?.connect_lazy(),
            secure_cookie: cfg.secure_cookie,
        })
    }
}

/// The console's routes over `app`.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(session::home))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/creator", get(creator::lookup))
        .route("/creator/{network}/{id}", get(creator::show))
        .route("/campaigns", get(brand::campaigns))
        .route("/campaigns/{id}", get(brand::campaign))
        .route("/campaigns/{id}/offers", get(offers::show).post(offers::issue))
        .route("/campaigns/{id}/report", get(brand::report))
        .route("/campaigns/{id}/standing", get(standing::show))
        .route("/model", get(model::page_handler))
        .fallback(layout::not_found)
        .with_state(app)
}

/// Serves the console on `listener` until `shutdown` fires.
pub async fn serve(listener: TcpListener, cfg: WebConfig, shutdown: Shutdown) -> Result<(), Error> {
    let app = App::new(&cfg)?;
    tracing::info!(addr = %listener.local_addr()?, "web console listening");
    axum::serve(listener, router(app)).with_graceful_shutdown(async move { shutdown.wait().await }).await?;
    Ok(())
}
