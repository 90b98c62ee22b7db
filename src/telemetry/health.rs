//! What a long-running scheduler exports so that alerts fire before data is lost
//! (`compose/prometheus/alerts.yml`): rounds run and failed per fleet and the time of the last
//! successful one, the servers each round found, the recorder's rows, and whether the database
//! answers. Labels are set here, by the code (`fleet`), never by a scrape configuration: on ECS
//! there is none.

use std::sync::{atomic::AtomicU64, Arc, Mutex, PoisonError};

use parsec_actors::{FleetCensus, RecorderStats};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{counter::ConstCounter, counter::Counter, family::Family, gauge::ConstGauge, gauge::Gauge},
    registry::Registry,
};

/// Labels of the per-fleet round counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoundLabels {
    fleet: String,
    /// `succeeded` or `failed`.
    outcome: &'static str,
}

/// Labels of the per-fleet server gauges and counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    fleet: String,
    /// Gauge: `ready` / `not_ready`; counter: `measured` / `skipped` / `marked_offline`.
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FleetLabel {
    fleet: String,
}

/// See the module docs. Clones share the series.
#[derive(Clone, Debug, Default)]
pub struct RunHealth {
    rounds: Family<RoundLabels, Counter>,
    last_success: Family<FleetLabel, Gauge<f64, AtomicU64>>,
    interval: Gauge<f64, AtomicU64>,
    fleet_servers: Family<ServerLabels, Gauge>,
    round_servers: Family<ServerLabels, Counter>,
    database_up: DatabaseUp,
    recorder: RecorderMirror,
}

impl RunHealth {
    /// Registers the series in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let health = Self::default();
        registry.register(
            "parsec_rounds",
            "Rounds run, per fleet measured and outcome (failed: no provide, no ready server, discovery failed, ...)",
            health.rounds.clone(),
        );
        registry.register(
            "parsec_last_successful_round_timestamp_seconds",
            "Unix time of the last round that succeeded, per fleet (the scheduler's start until one has)",
            health.last_success.clone(),
        );
        registry.register(
            "parsec_round_interval_seconds",
            "The scheduler's interval between round starts",
            health.interval.clone(),
        );
        registry.register(
            "parsec_fleet_servers",
            "Servers the last readiness check found per fleet, ready or not",
            health.fleet_servers.clone(),
        );
        registry.register(
            "parsec_round_servers",
            "Servers per fleet that rounds measured, skipped (not ready) and marked offline",
            health.round_servers.clone(),
        );
        let health = Self {
            database_up: DatabaseUp::register(registry),
            ..health
        };
        registry.register_collector(Box::new(health.recorder.clone()));
        health
    }

    /// A run of `fleets` starts, a round every `interval`: every series exists from now on,
    /// and "no successful round yet" counts from now.
    pub fn started(&self, fleets: &[String], interval: std::time::Duration) {
        self.interval.set(interval.as_secs_f64());
        let now = unix_now();
        for fleet in fleets {
            for outcome in ["succeeded", "failed"] {
                let _ = self.rounds.get_or_create(&round(fleet, outcome));
            }
            self.last_success
                .get_or_create(&FleetLabel { fleet: fleet.clone() })
                .set(now);
            for state in ["ready", "not_ready"] {
                self.fleet_servers.get_or_create(&servers(fleet, state)).set(0);
            }
            for state in ["measured", "skipped", "marked_offline"] {
                let _ = self.round_servers.get_or_create(&servers(fleet, state));
            }
        }
    }

    /// A round of `fleets` ended; `census` is what its readiness check found (`None`: it ended
    /// before checking, e.g. discovery failed).
    pub fn round_ended(&self, fleets: &[String], succeeded: bool, census: Option<&FleetCensus>) {
        let now = unix_now();
        for fleet in fleets {
            let outcome = if succeeded { "succeeded" } else { "failed" };
            self.rounds.get_or_create(&round(fleet, outcome)).inc();
            if succeeded {
                self.last_success
                    .get_or_create(&FleetLabel { fleet: fleet.clone() })
                    .set(now);
            }
        }
        let Some(census) = census else { return };
        // A fleet the round found no server of has none ready.
        let found = |fleet: &str| census.fleets.get(fleet).copied().unwrap_or_default();
        let named = fleets.iter().map(String::as_str);
        for fleet in named.chain(census.fleets.keys().map(String::as_str)) {
            let counts = found(fleet);
            let gauge = |state| self.fleet_servers.get_or_create(&servers(fleet, state));
            gauge("ready").set(counts.ready as i64);
            gauge("not_ready").set(counts.not_ready as i64);
        }
        for (fleet, counts) in &census.fleets {
            let counter = |state| self.round_servers.get_or_create(&servers(fleet, state));
            counter("measured").inc_by(counts.ready as u64);
            counter("skipped").inc_by(counts.not_ready as u64);
            counter("marked_offline").inc_by(counts.marked_offline as u64);
        }
    }

    /// The recorder's counters now.
    pub fn recorder(&self, stats: RecorderStats) {
        *self.recorder.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(stats);
    }

    /// The database gauge.
    pub fn database_up(&self) -> &DatabaseUp {
        &self.database_up
    }
}

/// How often the database is asked whether it answers.
pub const DATABASE_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// `parsec_database_up`, exported by servers and the scheduler alike: whether the database
/// answered the last check (`SELECT 1` within 5 s).
#[derive(Clone, Debug, Default)]
pub struct DatabaseUp(Gauge);

impl DatabaseUp {
    /// Registers the gauge in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let up = Self::default();
        registry.register(
            "parsec_database_up",
            "1 when the database answered the last check (SELECT 1 within 5 s), else 0",
            up.0.clone(),
        );
        up
    }

    /// Whether the database answered.
    pub fn set(&self, up: bool) {
        self.0.set(i64::from(up));
    }

    /// Asks `store` now and sets the gauge.
    pub async fn check(&self, store: &crate::db::Store) {
        let answer = store.ping().await;
        if let Err(e) = &answer {
            tracing::warn!(error = %e, "the database does not answer");
        }
        self.set(answer.is_ok());
    }

    /// Asks `store` every [`DATABASE_CHECK_INTERVAL`], until aborted.
    pub async fn watch(self, store: crate::db::Store) {
        let mut ticks = tokio::time::interval(DATABASE_CHECK_INTERVAL);
        loop {
            ticks.tick().await;
            self.check(&store).await;
        }
    }
}

fn round(fleet: &str, outcome: &'static str) -> RoundLabels {
    RoundLabels {
        fleet: fleet.to_owned(),
        outcome,
    }
}

fn servers(fleet: &str, state: &'static str) -> ServerLabels {
    ServerLabels {
        fleet: fleet.to_owned(),
        state,
    }
}

fn unix_now() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1e6
}

/// The recorder's last counters, encoded as counters and gauges at scrape time (the recorder
/// keeps the totals; copying them into `Counter`s would need deltas).
#[derive(Clone, Debug, Default)]
struct RecorderMirror(Arc<Mutex<Option<RecorderStats>>>);

impl Collector for RecorderMirror {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stats) = *self.0.lock().unwrap_or_else(PoisonError::into_inner) else {
            return Ok(());
        };
        for (name, help, total) in [
            (
                "parsec_recorder_rows_received",
                "Measurement rows the recorder took in",
                stats.received,
            ),
            (
                "parsec_recorder_rows_written",
                "Rows written to the store",
                stats.written,
            ),
            (
                "parsec_recorder_rows_retried",
                "Rows handed back by failed writes to be written again (once per failure)",
                stats.retried,
            ),
            (
                "parsec_recorder_rows_dropped",
                "Rows dropped because the buffer was full while the store failed: lost measurements",
                stats.dropped,
            ),
            (
                "parsec_store_write_errors",
                "Failed writes to the store",
                stats.failed_writes,
            ),
        ] {
            let counter = ConstCounter::new(total);
            counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
        }
        for (name, help, value) in [
            (
                "parsec_recorder_rows_held",
                "Rows waiting to be written",
                stats.held,
            ),
            (
                "parsec_recorder_capacity_rows",
                "Rows the recorder holds before it drops the oldest",
                stats.capacity,
            ),
        ] {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use parsec_actors::ServerCounts;

    use super::*;

    fn scrape(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text
    }

    #[test]
    fn rounds_servers_and_rows_are_exported_per_fleet() {
        let mut registry = Registry::default();
        let health = RunHealth::register(&mut registry);
        let fleets = vec!["default".to_owned(), "optprov".to_owned()];
        health.started(&fleets, std::time::Duration::from_secs(10));
        let counts = ServerCounts {
            ready: 3,
            not_ready: 1,
            marked_offline: 1,
        };
        let census = FleetCensus {
            fleets: BTreeMap::from([("default".to_owned(), counts)]),
        };
        health.round_ended(&fleets, true, Some(&census));
        health.round_ended(&fleets, false, None);
        health.recorder(RecorderStats {
            received: 9,
            written: 7,
            dropped: 2,
            held: 0,
            capacity: 100,
            ..RecorderStats::default()
        });
        health.database_up().set(true);
        let text = scrape(&registry);
        for line in [
            r#"parsec_rounds_total{fleet="default",outcome="succeeded"} 1"#,
            r#"parsec_rounds_total{fleet="optprov",outcome="failed"} 1"#,
            r#"parsec_fleet_servers{fleet="default",state="ready"} 3"#,
            // optprov was named but the round found none of its servers.
            r#"parsec_fleet_servers{fleet="optprov",state="ready"} 0"#,
            r#"parsec_round_servers_total{fleet="default",state="skipped"} 1"#,
            r#"parsec_round_servers_total{fleet="default",state="marked_offline"} 1"#,
            "parsec_round_interval_seconds 10.0",
            "parsec_recorder_rows_dropped_total 2",
            "parsec_recorder_rows_written_total 7",
            "parsec_recorder_capacity_rows 100",
            "parsec_database_up 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
        let stamp = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(r#"parsec_last_successful_round_timestamp_seconds{fleet="default"} "#)
            })
            .unwrap();
        let age = unix_now() - stamp.parse::<f64>().unwrap();
        assert!((0.0..60.0).contains(&age), "{age}");
    }
}
