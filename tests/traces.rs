//! Traces end to end: `parsec server dht` and `parsec scheduler` processes export OTLP/HTTP to
//! a receiver in this test, which decodes the requests with the official OTLP protobuf types
//! and checks one round's span tree across processes.

mod common;

use std::{
    collections::HashMap,
    net::TcpListener,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix_web::{web, App, HttpResponse, HttpServer};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest, common::v1::any_value::Value as AnyValue,
};
use parsec::testing::TempPostgres;
use parsec::testing::{
    process::{start_fleet, wait_until, SchedulerProcess, ServerProcess},
    stored::measurements,
};
use prost::Message as _;

/// A span as received.
#[derive(Clone, Debug)]
struct ReceivedSpan {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    events: Vec<ReceivedEvent>,
}

/// A span event as received: its name and its attributes, as text.
#[derive(Clone, Debug)]
struct ReceivedEvent {
    name: String,
    attributes: HashMap<String, String>,
}

impl PartialEq<&str> for ReceivedEvent {
    fn eq(&self, name: &&str) -> bool {
        self.name == *name
    }
}

/// An OTLP attribute value as text (strings bare, numbers in decimal).
fn value_text(value: Option<&AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(text)) => text.clone(),
        Some(AnyValue::IntValue(n)) => n.to_string(),
        Some(AnyValue::DoubleValue(x)) => x.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes OTLP/HTTP protobuf exports into `spans`.
fn decode(body: &[u8], spans: &Mutex<Vec<ReceivedSpan>>) -> Result<(), prost::DecodeError> {
    let request = ExportTraceServiceRequest::decode(body)?;
    let mut received = spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(name) => Some(name.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    events: span
                        .events
                        .into_iter()
                        .map(|e| ReceivedEvent {
                            name: e.name,
                            attributes: e
                                .attributes
                                .into_iter()
                                .map(|a| (a.key, value_text(a.value.as_ref().and_then(|v| v.value.as_ref()))))
                                .collect(),
                        })
                        .collect(),
                });
            }
        }
    }
    Ok(())
}

/// An OTLP/HTTP receiver on a free loopback port (`POST /v1/traces`), in its own thread.
fn start_receiver() -> (String, Arc<Mutex<Vec<ReceivedSpan>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let shared = spans.clone();
    std::thread::spawn(move || {
        actix::System::new().block_on(async move {
            let spans = web::Data::new(shared);
            HttpServer::new(move || {
                App::new().app_data(spans.clone()).route(
                    "/v1/traces",
                    web::post().to(
                        |body: web::Bytes, spans: web::Data<Arc<Mutex<Vec<ReceivedSpan>>>>| async move {
                            match decode(&body, &spans) {
                                Ok(()) => HttpResponse::Ok()
                                    .content_type("application/x-protobuf")
                                    .body(Vec::new()),
                                Err(e) => HttpResponse::BadRequest().body(e.to_string()),
                            }
                        },
                    ),
                )
            })
            .workers(1)
            .listen(listener)
            .unwrap()
            .run()
            .await
            .unwrap();
        });
    });
    (endpoint, spans)
}

#[test]
fn a_round_is_one_trace_across_scheduler_and_servers() {
    let (endpoint, spans) = start_receiver();
    let pg = TempPostgres::start().unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL: {e}"));
    let url = pg.url();
    let exporting = |service: &'static str| {
        [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
            ("OTEL_SERVICE_NAME", service.to_owned()),
            // Export within 200 ms rather than the default 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
        ]
    };
    let server_env = exporting("parsec-server");
    let server_env: Vec<(&str, &str)> = server_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _servers = start_fleet(3, "default", &url, &server_env);
    parsec::testing::stored::wait_for_live_nodes(&url, 3, Duration::from_secs(60));
    let scheduler_env = exporting("parsec-scheduler");
    let scheduler_env: Vec<(&str, &str)> = scheduler_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // One round now, the next in an hour. The servers run in DHT server mode, as the compose
    // stack runs them, and the retrievals wait a moment: with three servers, every retriever
    // holds the record itself by then, and must still look it up in the network.
    let scheduler = SchedulerProcess::start(&url, &["--interval", "1h", "--settle", "500ms"], &scheduler_env);
    assert!(
        wait_until(Duration::from_secs(30), || measurements(&url).len() == 3),
        "the round was not stored: {}",
        scheduler.log()
    );

    // The complete tree: a root, its provide and two retrievals, each continued by a server.
    let complete = |spans: &[ReceivedSpan]| -> Option<(ReceivedSpan, Vec<ReceivedSpan>, Vec<ReceivedSpan>)> {
        let root = spans
            .iter()
            .find(|s| s.name == "round" && s.service == "parsec-scheduler")?
            .clone();
        let children: Vec<ReceivedSpan> = spans
            .iter()
            .filter(|s| s.parent_span_id == root.span_id)
            .cloned()
            .collect();
        let continued: Vec<ReceivedSpan> = spans
            .iter()
            .filter(|s| {
                s.service == "parsec-server" && children.iter().any(|c| c.span_id == s.parent_span_id)
            })
            .cloned()
            .collect();
        (continued.len() == 3).then_some((root, children, continued))
    };
    let mut found = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            found = complete(&spans.lock().unwrap());
            found.is_some()
        }),
        "no complete round trace; received: {:#?}",
        spans.lock().unwrap()
    );
    let (root, children, server_spans) = found.unwrap();
    assert!(root.parent_span_id.is_empty(), "the round is the root: {root:?}");
    let names: HashMap<&str, usize> = children.iter().fold(HashMap::new(), |mut count, s| {
        *count.entry(s.name.as_str()).or_default() += 1;
        count
    });
    assert_eq!(names.get("provide"), Some(&1), "{children:#?}");
    assert_eq!(names.get("retrieval"), Some(&2), "{children:#?}");
    for span in &server_spans {
        assert_eq!(
            span.trace_id, root.trace_id,
            "the server continues the round's trace: {span:?}"
        );
        assert!(
            span.events.iter().any(|e| e.name.starts_with("dht step")),
            "the server span records the DHT query's steps: {span:?}"
        );
    }
    let retrievals: Vec<&ReceivedSpan> = server_spans.iter().filter(|s| s.name == "retrieve").collect();
    for span in &retrievals {
        // The step that ended the lookup: a record another peer sent, after at least one request.
        let found = span
            .events
            .iter()
            .find(|e| e.name == "dht step: providers found")
            .unwrap_or_else(|| panic!("the retrieval found a record in the network: {span:#?}"));
        let requests: u64 = found.attributes["requests"].parse().unwrap();
        assert!(requests >= 1, "{span:#?}");
    }
    assert!(
        retrievals.iter().any(|s| s
            .events
            .iter()
            .any(|e| e.name.starts_with("dht step: records in our own store"))),
        "a server-mode retriever held the record itself, which did not count: {retrievals:#?}"
    );
    let server_names: Vec<&str> = server_spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(server_names.iter().filter(|n| **n == "provide").count(), 1);
    assert_eq!(server_names.iter().filter(|n| **n == "retrieve").count(), 2);
    // Every row of the round leads to its trace, and says the servers kept connections warm.
    for row in measurements(&url) {
        assert_eq!(row.trace_id.as_deref(), Some(root.trace_id.as_str()), "{row:?}");
        assert_eq!(row.connections.as_deref(), Some("warm"), "{row:?}");
    }
}

/// An exporter whose collector is not there logs export errors; the server serves and stops as
/// usual.
#[test]
fn a_missing_collector_never_stalls_a_server() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("lone.sqlite").display());
    let endpoint = format!("http://{closed}");
    let server = parsec::testing::process::ServerProcess::start_with_env(
        &["--database-url", &database],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    for _ in 0..3 {
        let status = actix::System::new().block_on(async {
            common::client()
                .post(format!("{}/provide", server.http))
                .send_json(&serde_json::json!({"Content": "aGVsbG8="}))
                .await
                .unwrap()
                .status()
                .as_u16()
        });
        assert_eq!(status, 200);
    }
    let started = std::time::Instant::now();
    assert!(server.terminate().success());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "flushing to nowhere held the exit"
    );
}

/// A pubsub testnet: one trace per published message, its `pubsub.message` root with a
/// `pubsub.delivery` child per receiver whose `delivered` event marks the first copy, and every
/// row of the message leading to that trace.
#[test]
fn a_published_message_is_one_trace_with_a_delivery_per_receiver() {
    let (endpoint, spans) = start_receiver();
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pubsub.sqlite");
    let output = std::process::Command::new(parsec::testing::process::parsec_binary())
        .args([
            "testnet",
            "--protocol",
            "gossipsub",
            "--sweep-hosts",
            "4",
            "--messages",
            "2",
        ])
        .args([
            "--iterations",
            "1",
            "--transport",
            "memory",
            "--heartbeat",
            "200ms",
            "--no-progress",
        ])
        .arg("--database-url")
        .arg(format!("sqlite://{}", database.display()))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_SERVICE_NAME", "parsec-testnet")
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .output()
        .unwrap();
    // Traces are what this checks: a message that did not come still has its delivery span.
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        stdout.contains("hosts messages"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let complete = |spans: &[ReceivedSpan]| -> Option<Vec<(ReceivedSpan, Vec<ReceivedSpan>)>> {
        let roots: Vec<ReceivedSpan> = spans
            .iter()
            .filter(|s| s.name == "pubsub.message" && s.parent_span_id.is_empty())
            .cloned()
            .collect();
        let trees: Vec<(ReceivedSpan, Vec<ReceivedSpan>)> = roots
            .into_iter()
            .map(|root| {
                let deliveries = spans
                    .iter()
                    .filter(|s| s.name == "pubsub.delivery" && s.parent_span_id == root.span_id)
                    .cloned()
                    .collect();
                (root, deliveries)
            })
            .collect();
        (trees.len() == 2 && trees.iter().all(|(_, d)| d.len() == 3)).then_some(trees)
    };
    let mut found = None;
    assert!(
        wait_until(Duration::from_secs(20), || {
            found = complete(&spans.lock().unwrap());
            found.is_some()
        }),
        "no complete message traces; received: {:#?}",
        spans.lock().unwrap()
    );
    let trees = found.unwrap();
    for (root, deliveries) in &trees {
        assert_eq!(root.service, "parsec-testnet");
        for delivery in deliveries {
            assert_eq!(delivery.trace_id, root.trace_id);
            assert!(
                delivery
                    .events
                    .iter()
                    .any(|e| *e == "delivered" || *e == "not delivered by the deadline"),
                "{delivery:?}\n{stdout}"
            );
        }
    }
    let mut traced: Vec<String> = trees.iter().map(|(root, _)| root.trace_id.clone()).collect();
    traced.sort();
    let mut stored = stored_trace_ids(&database);
    stored.sort();
    stored.dedup();
    assert_eq!(stored, traced, "every row leads to its message's trace");
}

#[derive(diesel::QueryableByName)]
struct TraceId {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    trace_id: Option<String>,
}

fn stored_trace_ids(database: &std::path::Path) -> Vec<String> {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::SqliteConnection::establish(database.to_str().unwrap()).unwrap();
    let rows: Vec<TraceId> = diesel::sql_query(
        "SELECT trace_id FROM pubsub_publishes_ecs UNION ALL SELECT trace_id FROM pubsub_deliveries_ecs",
    )
    .load(&mut conn)
    .unwrap();
    rows.into_iter()
        .map(|r| r.trace_id.expect("every pubsub row has its trace"))
        .collect()
}

/// `parsec scheduler --protocol gossipsub` against three server processes speaking gossipsub:
/// every round one server publishes, the two others report each first copy, and the rows carry
/// each receiver's clock offset and the bound of the corrected latency. Each message is one
/// trace across the processes: the scheduler's `pubsub.message` root, continued by the
/// publishing server, and a `pubsub.delivery` per receiver, continued by the receiving server
/// (its `first copy`), the corrected latency as the scheduler's `delivered` event; the rows lead
/// to it.
#[test]
fn the_scheduler_runs_pubsub_rounds_against_server_processes_one_trace_per_message() {
    let (endpoint, spans) = start_receiver();
    let exporting = |service: &str| {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), endpoint.clone()),
            ("OTEL_SERVICE_NAME".to_owned(), service.to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "200".to_owned()),
        ]
    };
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pubsub.sqlite");
    let url = format!("sqlite://{}", database.display());
    let args = |bootstrap: Option<&str>| {
        let mut args = vec![
            "--gossipsub",
            "--heartbeat",
            "200ms",
            "--database-url",
            &url,
            "--heartbeat-interval",
            "200ms",
            "--fleet",
            "ps",
        ];
        if let Some(bootstrap) = bootstrap {
            args.extend(["--bootstrap", bootstrap]);
        }
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let server_env = exporting("parsec-server");
    let server_env: Vec<(&str, &str)> = server_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let first = ServerProcess::start_with_env(
        &args(None).iter().map(String::as_str).collect::<Vec<_>>(),
        &server_env,
    );
    let others: Vec<ServerProcess> = (0..2)
        .map(|_| {
            let args = args(Some(&first.tcp_multiaddr));
            ServerProcess::start_with_env(&args.iter().map(String::as_str).collect::<Vec<_>>(), &server_env)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::sqlite_counts(&database).nodes_with_heartbeat < 3 {
        assert!(Instant::now() < deadline, "the servers never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let scheduler_env = exporting("parsec-scheduler");
    let scheduler_env: Vec<(&str, &str)> = scheduler_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let scheduler = SchedulerProcess::start(
        &url,
        &[
            "--fleets",
            "ps",
            "--protocol",
            "gossipsub",
            "--rounds",
            "3",
            "--messages",
            "4",
            "--interval",
            "0s",
        ],
        &scheduler_env,
    );
    let (status, log) = scheduler.wait(Duration::from_secs(90));
    assert!(status.success(), "{log}");
    let stored = pubsub_rows(&database);
    // Three rounds of 4 messages; every other server receives each.
    assert_eq!(stored.publishes, 12, "{log}");
    assert_eq!(stored.deliveries, 24, "{log}");
    assert_eq!(stored.delivered, 24, "{log}");
    assert_eq!(
        stored.with_clock, 24,
        "every delivery row has its clock offset and bound: {log}"
    );
    assert_eq!(
        stored.publishers, 3,
        "the publisher rotates over the servers: {log}"
    );

    // 12 messages: each a root with two deliveries, each of those continued by its server.
    let complete = |spans: &[ReceivedSpan]| -> Option<Vec<ReceivedSpan>> {
        let roots: Vec<ReceivedSpan> = spans
            .iter()
            .filter(|s| s.name == "pubsub.message" && s.service == "parsec-scheduler")
            .cloned()
            .collect();
        let children = |parent: &ReceivedSpan, name: &str| -> Vec<ReceivedSpan> {
            spans
                .iter()
                .filter(|s| s.name == name && s.parent_span_id == parent.span_id)
                .cloned()
                .collect()
        };
        let whole = |root: &ReceivedSpan| {
            let deliveries = children(root, "pubsub.delivery");
            children(root, "pubsub.publish").len() == 1
                && deliveries.len() == 2
                && deliveries.iter().all(|d| children(d, "pubsub.await").len() == 1)
        };
        (roots.len() == 12 && roots.iter().all(whole)).then_some(roots)
    };
    let mut found = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            found = complete(&spans.lock().unwrap());
            found.is_some()
        }),
        "no complete message traces; received: {:#?}",
        spans.lock().unwrap()
    );
    let roots = found.unwrap();
    let spans = spans.lock().unwrap().clone();
    for root in &roots {
        assert!(
            root.parent_span_id.is_empty(),
            "a message is a trace's root: {root:?}"
        );
        for span in spans.iter().filter(|s| s.trace_id == root.trace_id) {
            match span.name.as_str() {
                "pubsub.delivery" => {
                    assert_eq!(span.service, "parsec-scheduler");
                    assert!(span.events.iter().any(|e| *e == "delivered"), "{span:?}");
                }
                "pubsub.await" => {
                    assert_eq!(span.service, "parsec-server");
                    assert!(span.events.iter().any(|e| *e == "first copy"), "{span:?}");
                }
                "pubsub.publish" => assert_eq!(span.service, "parsec-server"),
                _ => {}
            }
        }
    }
    let mut traced: Vec<String> = roots.iter().map(|r| r.trace_id.clone()).collect();
    traced.sort();
    let mut stored = stored_trace_ids(&database);
    stored.sort();
    stored.dedup();
    assert_eq!(stored, traced, "every row leads to its message's trace");
    for server in others.into_iter().chain([first]) {
        assert!(server.terminate().success());
    }
}

#[derive(diesel::QueryableByName, Debug)]
struct PubsubRows {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    publishes: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    deliveries: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    delivered: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    with_clock: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    publishers: i64,
}

fn pubsub_rows(database: &std::path::Path) -> PubsubRows {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::SqliteConnection::establish(database.to_str().unwrap()).unwrap();
    diesel::sql_query(
        "SELECT (SELECT count(*) FROM pubsub_publishes_ecs WHERE error IS NULL) AS publishes, \
         (SELECT count(*) FROM pubsub_deliveries_ecs) AS deliveries, \
         (SELECT count(*) FROM pubsub_deliveries_ecs WHERE error IS NULL AND duration >= 0) AS delivered, \
         (SELECT count(*) FROM pubsub_deliveries_ecs WHERE clock_offset IS NOT NULL \
            AND clock_uncertainty IS NOT NULL) AS with_clock, \
         (SELECT count(DISTINCT node_id) FROM pubsub_publishes_ecs) AS publishers",
    )
    .get_result(&mut conn)
    .unwrap()
}
