//! Prometheus metrics end to end: the real Prometheus server (`apt-get install -y prometheus`)
//! scrapes three `parsec server dht` processes and a `parsec scheduler`, and its query API
//! returns what one round did under parsec's metric names, beside libp2p's and the process's.

mod common;

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use parsec::testing::process::{start_fleet, wait_until, SchedulerProcess};
use parsec::testing::TempPostgres;
use serde_json::Value;

/// A Prometheus server scraping `targets` every 500 ms, deleted on drop. Like the compose
/// stack's, its configuration sets no `fleet` label: the processes do.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

/// The address Prometheus logs once it listens (`msg="Listening on" address=127.0.0.1:40851`),
/// read from its log within 60 s; the rest of the log is drained so it never blocks on a full pipe.
fn listening_address(log: std::process::ChildStderr) -> Option<String> {
    use std::io::BufRead;
    let (found_tx, found) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(log).lines().map_while(Result::ok) {
            if line.contains("msg=\"Listening on\"") {
                if let Some(address) = line.split("address=").nth(1) {
                    let _ = found_tx.send(address.trim().to_owned());
                }
            }
        }
    });
    found.recv_timeout(Duration::from_secs(60)).ok()
}

impl Prometheus {
    fn start(targets: &[String]) -> Self {
        let binary = parsec::testing::process::installed("prometheus", "prometheus");
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\nscrape_configs:\n  - job_name: parsec\n    \
             static_configs:\n      - targets: [{}]\n",
            targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ")
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        // Port 0, and the port it bound read from its log: no port is picked, released and
        // then bound by someone else first.
        let mut child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let address = listening_address(child.stderr.take().unwrap())
            .unwrap_or_else(|| panic!("prometheus never said where it listens"));
        Self {
            child,
            url: format!("http://{address}"),
            _dir: dir,
        }
    }

    /// The JSON answer of an instant query (`None`: no answer).
    fn query(&self, query: &str) -> Option<Value> {
        let url = format!("{}/api/v1/query", self.url);
        actix::System::new().block_on(async {
            let mut response = common::client()
                .get(&url)
                .query(&[("query", query)])
                .ok()?
                .send()
                .await
                .ok()?;
            response.json().await.ok()
        })
    }

    /// The value of an instant query that returns one series (`None`: no series, or no answer).
    fn value(&self, query: &str) -> Option<f64> {
        let body = self.query(query)?;
        let result = body["data"]["result"].as_array()?;
        if result.len() != 1 {
            return None;
        }
        result[0]["value"][1].as_str()?.parse().ok()
    }

    /// How many series an instant query returns (`None`: an error or no answer).
    fn series(&self, query: &str) -> Option<usize> {
        let body = self.query(query)?;
        (body["status"] == "success").then(|| body["data"]["result"].as_array().map_or(0, Vec::len))
    }

    /// Waits until `query` returns `expected`; panics with what it returned last.
    fn expect(&self, query: &str, expected: f64) {
        let mut last = None;
        let seen = wait_until(Duration::from_secs(30), || {
            last = self.value(query);
            last == Some(expected)
        });
        assert!(seen, "{query}: expected {expected}, got {last:?}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three servers and a scheduler (with `scheduler_args`) on a throwaway Postgres, every one
/// serving metrics; returns them with their metrics addresses.
struct ScrapedFleet {
    url: String,
    targets: Vec<String>,
    scheduler: SchedulerProcess,
    _servers: Vec<parsec::testing::process::ServerProcess>,
    _pg: TempPostgres,
}

fn scraped_fleet(scheduler_args: &[&str]) -> ScrapedFleet {
    let pg = TempPostgres::start().unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL: {e}"));
    let url = pg.url();
    let servers = start_fleet(3, "default", &url, &[]);
    parsec::testing::stored::wait_for_live_nodes(&url, 3, Duration::from_secs(60));
    let scheduler = SchedulerProcess::start(&url, scheduler_args, &[]);
    assert!(wait_until(Duration::from_secs(30), || scheduler
        .metrics()
        .is_some()));
    let mut targets: Vec<String> = servers.iter().map(|s| s.metrics.clone()).collect();
    targets.push(scheduler.metrics().unwrap());
    ScrapedFleet {
        url,
        targets,
        scheduler,
        _servers: servers,
        _pg: pg,
    }
}

#[test]
fn prometheus_scrapes_parsec_metrics_from_servers_and_scheduler() {
    // One round now, the next in an hour: the process stays up to be scraped.
    let fleet = scraped_fleet(&["--interval", "1h"]);
    let (url, scheduler) = (&fleet.url, &fleet.scheduler);
    assert!(
        wait_until(Duration::from_secs(30), || parsec::testing::stored::measurements(
            url
        )
        .len()
            == 3),
        "the round was not stored: {}",
        scheduler.log()
    );

    let prometheus = Prometheus::start(&fleet.targets);
    prometheus.expect("count(up == 1)", 4.0);
    // Servers: one provide and two retrievals, all successful, labelled with the scheduler.
    prometheus.expect("sum(parsec_durations_count)", 3.0);
    prometheus.expect(
        r#"sum(parsec_durations_count{type="provide_duration",success="true",scheduler="default"})"#,
        1.0,
    );
    prometheus.expect(
        r#"sum(parsec_durations_count{type="retrieval_ttfpr",success="true",scheduler="default"})"#,
        2.0,
    );
    prometheus.expect(
        r#"sum(parsec_http_requests_total{method="POST",path="/provide"})"#,
        1.0,
    );
    prometheus.expect(
        r#"sum(parsec_http_requests_total{method="POST",path="/retrieve"})"#,
        2.0,
    );
    // Every duration is under the 180 s bucket and above zero.
    prometheus.expect(r#"sum(parsec_durations_bucket{le="180.0"})"#, 3.0);
    assert!(prometheus.value("sum(parsec_durations_sum)").unwrap() > 0.0);
    // The scheduler: what it asked for, and how many servers were ready.
    prometheus.expect(r#"parsec_issued_provides_total{success="true"}"#, 1.0);
    prometheus.expect(r#"parsec_issued_retrievals_total{success="true"}"#, 2.0);
    prometheus.expect("parsec_active_nodes", 3.0);
    // libp2p's own metrics from every server: connections made, kad queries finished.
    prometheus.expect(
        "count(sum by (instance) (libp2p_swarm_connections_established_total) > 0)",
        3.0,
    );
    prometheus.expect(
        "count(sum by (instance) (libp2p_kad_query_result_duration_seconds_count) > 0)",
        3.0,
    );
    // The fleet label comes from the servers themselves (the scrape configuration sets none),
    // on parsec's, libp2p's and the process's series alike.
    prometheus.expect(r#"sum(parsec_durations_count{fleet="default"})"#, 3.0);
    prometheus.expect(r#"count(process_open_fds{fleet="default"})"#, 3.0);
    // The scheduler's health: one good round of fleet default, three servers measured and
    // ready, rows written, the database answering.
    prometheus.expect(r#"parsec_rounds_total{fleet="default",outcome="succeeded"}"#, 1.0);
    prometheus.expect(r#"parsec_rounds_total{fleet="default",outcome="failed"}"#, 0.0);
    prometheus.expect(r#"parsec_fleet_servers{fleet="default",state="ready"}"#, 3.0);
    prometheus.expect(
        r#"parsec_round_servers_total{fleet="default",state="measured"}"#,
        3.0,
    );
    prometheus.expect("parsec_round_interval_seconds", 3600.0);
    // Servers check the database too: three servers and the scheduler.
    prometheus.expect("count(parsec_database_up == 1)", 4.0);
    let age = prometheus
        .value("time() - parsec_last_successful_round_timestamp_seconds")
        .unwrap();
    assert!((0.0..120.0).contains(&age), "last good round {age} s ago");
    // Liveness on every telemetry port.
    for target in &fleet.targets {
        let output = Command::new(parsec::testing::process::parsec_binary())
            .args(["health", "--liveness", target])
            .output()
            .unwrap();
        parsec::testing::process::expect_success(&output);
    }
    // Process metrics from every target.
    prometheus.expect("count(process_resident_memory_bytes > 1e6)", 4.0);
    prometheus.expect("count(process_memory_limit_bytes > 1e6)", 4.0);
    prometheus.expect("count(process_open_fds > 0)", 4.0);
    prometheus.expect("count(process_cpu_seconds_total > 0)", 4.0);
}

/// Every metric an alert of `compose/prometheus/alerts.yml` names.
fn alert_metric_names() -> Vec<String> {
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/compose/prometheus/alerts.yml"
    ))
    .unwrap();
    let exprs: String = rules
        .split("expr:")
        .skip(1)
        .map(|rest| rest.split("labels:").next().unwrap())
        .collect();
    let mut names: Vec<String> = exprs
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("parsec_") || word.starts_with("process_"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Every expression of the compose stack's Grafana dashboard, and every metric its alerts
/// name, run by the real Prometheus against real processes while rounds run, returns at least
/// one series.
#[test]
fn every_dashboard_expression_returns_series() {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/compose/grafana/dashboards/parsec.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let expressions: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().unwrap().clone())
        .map(|target| {
            target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "30s")
        })
        .collect();
    assert!(expressions.len() >= 9);

    let alerted = alert_metric_names();
    assert!(alerted.len() >= 10, "{alerted:?}");
    let expressions = expressions.into_iter().chain(alerted);

    let fleet = scraped_fleet(&["--interval", "300ms"]);
    let targets = fleet.targets.clone();
    let prometheus = Prometheus::start(&targets);
    for expression in expressions {
        let mut last = None;
        let answered = wait_until(Duration::from_secs(30), || {
            last = prometheus.series(&expression);
            last.is_some_and(|n| n > 0)
        });
        assert!(answered, "{expression}: {last:?} series");
    }
}
