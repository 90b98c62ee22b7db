//! Prometheus metrics under parsec's names, so its dashboards keep working, plus process
//! metrics, in one registry served as text on `/metrics`.
//!
//! `parsec_durations` is a histogram where parsec has a summary: summaries cannot be
//! aggregated across a fleet (the p50 of p50s means nothing), histogram buckets can, and
//! `histogram_quantile` gives the percentiles. The buckets span 1 ms to the 3 min provide
//! deadline.

use std::{
    borrow::Cow,
    net::TcpListener,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use actix_web::{dev::Server, web, App, HttpResponse, HttpServer};
use parsec_actors::{Operation, OperationReport, PubsubRoundSummary, RoundError, RoundSummary};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Upper bounds (seconds) of the duration buckets: 1 ms … 180 s, about 2.5× apart.
pub const DURATION_BUCKETS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0, 180.0,
];

/// Labels of `parsec_durations`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    /// `provide_duration` or `retrieval_ttfpr`.
    r#type: &'static str,
    /// `true` when the step has no error.
    success: &'static str,
    /// The scheduler that asked (`x-scheduler-id`), empty if none.
    scheduler: String,
}

/// Labels of `parsec_http_requests_total`. Every value comes from a fixed set or a bounded one:
/// requests from the open internet must not grow `/metrics` without bound.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// `GET`, `POST`, or `other`.
    method: &'static str,
    /// The route as parsec labels it (`/provide`, `/retrieve`, `/readiness`), `other` for
    /// unknown paths: never the raw path, whose CIDs would make a series each.
    path: &'static str,
    scheduler: String,
}

/// Distinct `x-scheduler-id` values that get a series of their own; later ones share `other`.
/// A fleet has a handful of schedulers.
const MAX_SCHEDULER_LABELS: usize = 32;

/// The scheduler label values seen so far, bounded.
#[derive(Clone, Debug, Default)]
struct SchedulerLabels(Arc<std::sync::Mutex<std::collections::HashSet<String>>>);

impl SchedulerLabels {
    /// `scheduler` as a label value: itself while the set has room or already holds it.
    fn label(&self, scheduler: Option<&str>) -> String {
        let Some(scheduler) = scheduler.filter(|s| !s.is_empty()) else {
            return String::new();
        };
        let mut seen = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.contains(scheduler) || seen.len() < MAX_SCHEDULER_LABELS && seen.insert(scheduler.to_owned())
        {
            scheduler.to_owned()
        } else {
            "other".to_owned()
        }
    }
}

type DurationFamily = Family<DurationLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// What a server measures: its operations' durations and the requests it served.
#[derive(Clone, Debug)]
pub struct ServerMetrics {
    durations: DurationFamily,
    requests: Family<RequestLabels, Counter>,
    schedulers: SchedulerLabels,
}

impl ServerMetrics {
    /// Registers the server metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            durations: Family::new_with_constructor(duration_histogram),
            requests: Family::default(),
            schedulers: SchedulerLabels::default(),
        };
        registry.register(
            "parsec_durations",
            "Durations of provides and retrievals (time to first provider record) in seconds",
            metrics.durations.clone(),
        );
        registry.register(
            "parsec_http_requests",
            "HTTP requests served, by method, route and scheduler",
            metrics.requests.clone(),
        );
        metrics
    }

    /// Records every step of an operation's report.
    pub fn record_operation(&self, operation: Operation, report: &OperationReport, scheduler: Option<&str>) {
        let kind = match operation {
            Operation::Provide => "provide_duration",
            Operation::Retrieval => "retrieval_ttfpr",
            Operation::Publish => "pubsub_publish",
            Operation::Delivery => "pubsub_delivery",
            Operation::Reprovide => "reprovide_round",
        };
        for step in &report.measurements {
            self.durations
                .get_or_create(&DurationLabels {
                    r#type: kind,
                    success: if step.error.is_none() { "true" } else { "false" },
                    scheduler: self.schedulers.label(scheduler),
                })
                .observe(step.duration.as_secs_f64());
        }
    }

    /// Counts one served request.
    /// Counts one served request. Requests to unknown routes carry no scheduler label.
    pub fn count_request(&self, method: &str, route: Option<&str>, scheduler: Option<&str>) {
        let path = match route {
            Some("/provide") => "/provide",
            Some("/retrieve/{cid}") => "/retrieve",
            Some("/readiness") => "/readiness",
            _ => "other",
        };
        let method = match method {
            "GET" => "GET",
            "POST" => "POST",
            _ => "other",
        };
        let scheduler = if path == "other" {
            String::new()
        } else {
            self.schedulers.label(scheduler)
        };
        self.requests
            .get_or_create(&RequestLabels {
                method,
                path,
                scheduler,
            })
            .inc();
    }
}

/// The `success` label of the issued-operation counters, as parsec has it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SuccessLabel {
    /// `true` when the server answered a measurement without an error.
    success: &'static str,
}

impl SuccessLabel {
    fn of(success: bool) -> Self {
        Self {
            success: if success { "true" } else { "false" },
        }
    }
}

/// What a scheduler counts: ready nodes, the operations it asked for, pubsub deliveries, and
/// the health of the run that alerts watch.
#[derive(Clone, Debug)]
pub struct SchedulerMetrics {
    /// Rounds, servers, rows and the database, per fleet.
    pub health: super::health::RunHealth,
    active_nodes: Gauge,
    issued_provides: Family<SuccessLabel, Counter>,
    issued_retrievals: Family<SuccessLabel, Counter>,
    pubsub_delivery_seconds: Histogram,
    pubsub_duplicates: Counter,
    pubsub_lost: Counter,
}

impl Default for SchedulerMetrics {
    fn default() -> Self {
        Self {
            active_nodes: Gauge::default(),
            issued_provides: Family::default(),
            issued_retrievals: Family::default(),
            pubsub_delivery_seconds: duration_histogram(),
            pubsub_duplicates: Counter::default(),
            pubsub_lost: Counter::default(),
            health: super::health::RunHealth::default(),
        }
    }
}

impl SchedulerMetrics {
    /// Registers the scheduler metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            health: super::health::RunHealth::register(registry),
            ..Self::default()
        };
        registry.register(
            "parsec_active_nodes",
            "Servers that were ready in the last round",
            metrics.active_nodes.clone(),
        );
        registry.register(
            "parsec_issued_provides",
            "Provide requests sent to servers",
            metrics.issued_provides.clone(),
        );
        registry.register(
            "parsec_issued_retrievals",
            "Retrieval requests sent to servers",
            metrics.issued_retrievals.clone(),
        );
        registry.register(
            "parsec_pubsub_delivery_seconds",
            "Pubsub deliveries: from the publisher's send to a receiver's first copy, corrected by both clock offsets",
            metrics.pubsub_delivery_seconds.clone(),
        );
        registry.register(
            "parsec_pubsub_duplicates",
            "Pubsub copies received beyond the first",
            metrics.pubsub_duplicates.clone(),
        );
        registry.register(
            "parsec_pubsub_lost",
            "Pubsub deliveries that did not come by the round's deadline",
            metrics.pubsub_lost.clone(),
        );
        metrics
    }

    /// Counts the servers a reprovide round found ready (its rows are its figures).
    pub fn record_reprovide_round(&self, ready_nodes: usize) {
        self.active_nodes.set(ready_nodes as i64);
    }

    /// Counts what a pubsub round measured.
    pub fn record_pubsub_round(&self, summary: &PubsubRoundSummary) {
        self.active_nodes.set(summary.ready_nodes as i64);
        let deliveries = &summary.deliveries;
        for latency in &deliveries.latencies {
            self.pubsub_delivery_seconds.observe(latency.as_secs_f64());
        }
        self.pubsub_duplicates.inc_by(deliveries.duplicates);
        // Lost: never came. A copy that came but could not be timed is not lost.
        self.pubsub_lost.inc_by(deliveries.missing() as u64);
    }

    /// Counts what a round asked for.
    pub fn record_round(&self, outcome: &Result<RoundSummary, RoundError>) {
        match outcome {
            Ok(summary) => {
                self.active_nodes.set(summary.ready_nodes as i64);
                self.issued_provides
                    .get_or_create(&SuccessLabel::of(measured_without_error(&summary.provide)))
                    .inc();
                for (_, report) in &summary.retrievals {
                    self.issued_retrievals
                        .get_or_create(&SuccessLabel::of(measured_without_error(report)))
                        .inc();
                }
                self.issued_retrievals
                    .get_or_create(&SuccessLabel::of(false))
                    .inc_by(summary.failures.len() as u64);
            }
            Err(RoundError::ProvideFailed { ready_nodes, .. }) => {
                self.active_nodes.set(*ready_nodes as i64);
                self.issued_provides.get_or_create(&SuccessLabel::of(false)).inc();
            }
            Err(RoundError::NoReadyNode { .. }) => {
                self.active_nodes.set(0);
            }
            Err(_) => {}
        }
    }
}

fn measured_without_error(report: &OperationReport) -> bool {
    report.measurements.iter().all(|m| m.error.is_none())
}

/// A registry with the process metrics in it; with a `fleet`, every series it holds carries
/// that label, set by the process (a server's fleet), not by a scrape configuration.
pub fn registry(fleet: Option<&str>) -> Registry {
    let labels = fleet.map(|fleet| (Cow::Borrowed("fleet"), Cow::Owned(fleet.to_owned())));
    let mut registry = Registry::with_labels(labels.into_iter());
    registry.register_collector(Box::new(super::process::ProcessCollector));
    registry
}

/// Serves `registry` as `GET /metrics`, and `liveness` as `GET /healthz`, on `listener`.
pub fn serve(listener: TcpListener, registry: Registry, liveness: Liveness) -> std::io::Result<Server> {
    let registry = web::Data::new(Arc::new(registry));
    let liveness = web::Data::new(liveness);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(registry.clone())
            .app_data(liveness.clone())
            .route("/metrics", web::get().to(metrics))
            .route("/healthz", web::get().to(healthz))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}

async fn metrics(registry: web::Data<Arc<Registry>>) -> HttpResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &registry) {
        Ok(()) => HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(body),
        Err(e) => HttpResponse::InternalServerError().body(format!("encoding metrics failed: {e}")),
    }
}

/// Longest the process's main event loop may go without ticking before `/healthz` says it is
/// stalled (a deadlock, or a loop that never yields).
pub const STALLED_AFTER: Duration = Duration::from_secs(30);

/// Whether the process's main actix System still runs: a task on it ticks every second, and
/// `/healthz` (served by its own worker thread, so it answers even when the System hangs) checks
/// the age of the last tick. Liveness, not readiness: a server without peers is alive.
#[derive(Clone, Debug)]
pub struct Liveness {
    started: Instant,
    /// Milliseconds from `started` to the last tick.
    last_tick_ms: Arc<AtomicU64>,
}

impl Liveness {
    /// A liveness ticked by a task on the current actix System.
    pub fn ticking() -> Self {
        let liveness = Self {
            started: Instant::now(),
            last_tick_ms: Arc::default(),
        };
        let ticker = liveness.clone();
        actix::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            loop {
                ticks.tick().await;
                let ms = u64::try_from(ticker.started.elapsed().as_millis()).unwrap_or(u64::MAX);
                ticker.last_tick_ms.store(ms, Ordering::Relaxed);
            }
        });
        liveness
    }

    /// Time since the main loop last ticked.
    fn silence(&self) -> Duration {
        let last = Duration::from_millis(self.last_tick_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// `GET /healthz`: 200 while the main loop ticks, 503 once it has been silent for
/// [`STALLED_AFTER`].
async fn healthz(liveness: web::Data<Liveness>) -> HttpResponse {
    let silence = liveness.silence();
    let body = serde_json::json!({
        "status": if silence < STALLED_AFTER { "alive" } else { "stalled" },
        "last_tick_seconds_ago": silence.as_secs_f64(),
        "uptime_seconds": liveness.started.elapsed().as_secs_f64(),
    });
    if silence < STALLED_AFTER {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy)]
pub struct MetricsEndpoint {
    /// Address of the Prometheus `/metrics` endpoint.
    pub host: std::net::IpAddr,
    /// Port of the `/metrics` endpoint (0: any free port, logged at start).
    pub port: u16,
}

impl MetricsEndpoint {
    /// Starts the endpoint for `registry` on the current actix System. A port that cannot be
    /// bound is logged and skipped: measurements matter more than their metrics.
    pub fn start(&self, registry: Registry) {
        let bound = TcpListener::bind((self.host, self.port)).and_then(|listener| {
            Ok((
                listener.local_addr()?,
                serve(listener, registry, Liveness::ticking())?,
            ))
        });
        match bound {
            Ok((address, server)) => {
                tracing::info!(%address, "metrics at http://{address}/metrics, liveness at /healthz");
                actix::spawn(async move {
                    if let Err(e) = server.await {
                        tracing::error!(error = %e, "metrics endpoint failed");
                    }
                });
            }
            Err(e) => tracing::error!(
                host = %self.host,
                port = self.port,
                error = %e,
                "cannot serve metrics (set PARSEC_TELEMETRY_PORT to a free port, or 0); running without"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pubsub_round_is_counted_in_the_delivery_histogram_and_counters() {
        let mut registry = registry(None);
        let metrics = SchedulerMetrics::register(&mut registry);
        let mut deliveries = parsec_actors::pubsub::DeliveryTally::default();
        deliveries.delivered(Duration::from_millis(3), 1);
        deliveries.delivered(Duration::from_millis(40), 4);
        deliveries.delivered(Duration::from_secs(2), 5);
        deliveries.missed();
        // Came, but untimed: neither a delivery in the histogram nor lost.
        deliveries.unmeasurable();
        metrics.record_pubsub_round(&PubsubRoundSummary {
            deliveries,
            ready_nodes: 5,
            ..PubsubRoundSummary::default()
        });
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "parsec_pubsub_delivery_seconds_count 3",
            "parsec_pubsub_delivery_seconds_bucket{le=\"0.005\"} 1",
            "parsec_pubsub_delivery_seconds_bucket{le=\"0.05\"} 2",
            "parsec_pubsub_duplicates_total 7",
            "parsec_pubsub_lost_total 1",
            "parsec_active_nodes 5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
    }
}
