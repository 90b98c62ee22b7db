//! Telemetry: logs (`tracing` to stderr, filtered by `RUST_LOG` or the command's default) and
//! Prometheus metrics ([`metrics`]: parsec's metric names, process metrics, the `/metrics`
//! endpoint).

pub mod metrics;
mod process;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `default_filter` applies when `RUST_LOG` is unset.
pub fn init(default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for people; log collectors and tests read plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
