//! Tracing subscriber setup: `EnvFilter` (default `info,sqlx=warn`), pretty
//! output for people, JSON for log pipelines, and, when asked for, OTLP trace
//! export (see [`crate::trace`] for what is traced).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

use crate::Error;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// Where traces go: an OTLP/gRPC collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceExport {
    /// The collector, e.g. `http://otel-collector:4317`.
    pub endpoint: String,
    /// `service.name` of the spans, unless `OTEL_SERVICE_NAME` says otherwise.
    pub service_name: String,
}

impl TraceExport {
    /// Export is off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the standard
    /// variable; `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` apply too).
    pub fn from_env(service_name: &str) -> Option<Self> {
        let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok()?;
        let endpoint = endpoint.trim();
        (!endpoint.is_empty()).then(|| Self { endpoint: endpoint.to_owned(), service_name: service_name.to_owned() })
    }
}

/// Which spans are exported (override with `LIFT_TRACE_FILTER`): Lift's own at
/// info and above; the database driver's and the HTTP/2 stack's would swamp them.
pub const TRACE_FILTER: &str = "info,sqlx=warn,sea_orm=warn,h2=warn,hyper=warn,hyper_util=warn,tower=warn";

/// Keeps trace export running; flushes what is buffered when dropped.
#[derive(Debug, Default)]
#[must_use = "dropping the guard stops trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends every finished span now (blocks until the collector answered or
    /// the exporter's timeout passed). Call it outside async code, e.g. in
    /// `spawn_blocking`.
    pub fn flush(&self) {
        if let Some(p) = &self.provider
            && let Err(e) = p.force_flush()
        {
            tracing::warn!(error = %e, "trace export flush failed");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            tracing::warn!(error = %e, "trace export did not shut down cleanly");
        }
    }
}

/// Installs the global subscriber. Safe to call more than once (later calls are ignored),
/// so tests and the demo can share it.
pub fn init(format: LogFormat, default_filter: &str) {
    // Without export there is nothing to build, so this cannot fail.
    let _ = init_with(format, default_filter, None);
}

/// [`init`], and with `export` spans go to an OTLP collector and every gRPC
/// hop carries `traceparent`. Must run inside a Tokio runtime when exporting
/// (the exporter's gRPC client lives on it). Keep the returned guard alive.
pub fn init_with(format: LogFormat, default_filter: &str, export: Option<TraceExport>) -> Result<Telemetry, Error> {
    // Logs follow RUST_LOG; traces have their own filter, so quiet logs do not
    // cut a trace short (a span the trace filter drops breaks the parent chain).
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let (pretty, json) = match format {
        LogFormat::Pretty => (Some(fmt::layer().compact().with_writer(std::io::stderr).with_filter(filter())), None),
        LogFormat::Json => (None, Some(fmt::layer().json().with_writer(std::io::stderr).with_filter(filter()))),
    };
    let provider = match export {
        None => None,
        Some(export) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(export.endpoint.clone())
                .build()
                .map_err(|e| Error::Telemetry(format!("OTLP exporter for {}: {e}", export.endpoint)))?;
            let mut resource = Resource::builder();
            if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
                resource = resource.with_service_name(export.service_name);
            }
            Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build())
        }
    };
    let trace_filter = std::env::var("LIFT_TRACE_FILTER").unwrap_or_else(|_| TRACE_FILTER.to_owned());
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer().with_tracer(p.tracer("lift")).with_filter(EnvFilter::new(&trace_filter))
    });
    let installed = tracing_subscriber::registry().with(pretty).with(json).with(otel).try_init().is_ok();
    if installed && provider.is_some() {
        crate::trace::enable();
    }
    Ok(Telemetry { provider: if installed { provider } else { None } })
}
