//! Telemetry: logs (`tracing` to stderr, filtered by `RUST_LOG` or the command's default),
//! traces ([`traces`]: OTLP export, W3C propagation) and Prometheus metrics ([`metrics`]:
//! parsec's metric names, process metrics, the `/metrics` endpoint).

pub mod health;
mod log_limit;
pub mod metrics;
mod process;

pub use process::{peak_rss_bytes, reset_peak_rss};
pub mod traces;

use std::io::IsTerminal;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::{
    filter::FilterExt as _, layer::SubscriberExt as _, util::SubscriberInitExt as _, EnvFilter, Layer as _,
};

/// Keeps the trace exporter alive; [`shutdown`](Self::shutdown) flushes what it holds.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still held (bounded by the SDK's export timeout).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown() {
                eprintln!("warning: flushing traces failed: {e}");
            }
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event, for people.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields, span), for log collectors.
    Json,
}

/// Installs the global subscriber: logs in `format`, filtered by `RUST_LOG` (else
/// `default_filter`), and parsec's spans exported as `default_service` when an OTLP endpoint is
/// configured.
pub fn init(default_filter: &str, default_service: &str, format: LogFormat) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        // Colour codes only for people; log collectors and tests read plain text.
        LogFormat::Text => lines.with_ansi(std::io::stderr().is_terminal()).boxed(),
        LogFormat::Json => lines.json().with_current_span(true).with_span_list(false).boxed(),
    }
    // Lines that remote peers cause at will pass once a minute per call site.
    .with_filter(filter.and(log_limit::PeerCausedLimit::default()));
    let (provider, warning) = match traces::provider(default_service) {
        Ok(provider) => (provider, None),
        Err(e) => (None, Some(e)),
    };
    let spans = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(traces::tracer(provider))
            .with_filter(EnvFilter::new(traces::EXPORTED_SPANS))
    });
    let _ = tracing_subscriber::registry().with(logs).with(spans).try_init();
    if let Some(warning) = warning {
        tracing::warn!("traces are off: {warning}");
    }
    Telemetry { provider }
}
