//! A rate limit on the log lines a remote peer can cause at will: gossipsub logs an ERROR for
//! every RPC it ignores (a peer subscribed to more topics than allowed sends one per message), and
//! a peer that misbehaves must not flood the log or trip an alert on its own. Such lines pass at
//! most once a minute per place in the code.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use tracing::{callsite::Identifier, subscriber::Interest, Level, Metadata};
use tracing_subscriber::layer::{Context, Filter};

/// Targets whose warnings and errors remote peers cause.
const PEER_CAUSED_TARGETS: [&str; 1] = ["libp2p_gossipsub"];

/// The shortest time between two lines of one call site.
const ONE_LINE_EVERY: Duration = Duration::from_secs(60);

/// The filter; place it after the level filter, so that only lines that would be written count.
#[derive(Debug, Default)]
pub(super) struct PeerCausedLimit {
    last_written: Mutex<HashMap<Identifier, Instant>>,
}

impl PeerCausedLimit {
    fn is_limited(metadata: &Metadata<'_>) -> bool {
        metadata.is_event()
            && *metadata.level() <= Level::WARN
            && PEER_CAUSED_TARGETS
                .iter()
                .any(|target| metadata.target().starts_with(target))
    }
}

impl<S> Filter<S> for PeerCausedLimit {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        if !Self::is_limited(metadata) {
            return true;
        }
        let mut last_written = self.last_written.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let callsite = metadata.callsite();
        match last_written.get(&callsite) {
            Some(&at) if now.duration_since(at) < ONE_LINE_EVERY => false,
            _ => {
                // Bounded: one entry per call site in the binary.
                last_written.insert(callsite, now);
                true
            }
        }
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if Self::is_limited(metadata) {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::{layer::SubscriberExt as _, Layer as _};

    use super::*;

    /// Log lines written to memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_peer_caused_error_is_written_once_a_minute_and_others_always() {
        let lines = Lines::default();
        let writer = lines.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_filter(PeerCausedLimit::default());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            for rpc in 0..5 {
                tracing::error!(target: "libp2p_gossipsub::behaviour", rpc, "Subscription filter error");
                tracing::error!(target: "parsec::store", rpc, "a write failed");
                tracing::info!(target: "libp2p_gossipsub::behaviour", rpc, "a mesh peer grafted");
            }
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches("Subscription filter error").count(), 1, "{text}");
        assert_eq!(text.matches("a write failed").count(), 5, "{text}");
        assert_eq!(text.matches("a mesh peer grafted").count(), 5, "{text}");
    }
}
