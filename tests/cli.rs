//! The `parsec` binary as users run it: the testnet main job, the simulator, `health`, and two
//! `server dht` processes that join one DHT and serve each other's content over the HTTP API.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

mod common;

use parsec::testing::process::ServerProcess;

const PARSEC: &str = env!("CARGO_BIN_EXE_parsec");

#[test]
fn testnet_runs_rounds_and_prints_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("testnet.sqlite");
    let report = dir.path().join("report");
    let output = common::testnet_command(3, "tcp", &format!("sqlite://{}", database.display()))
        .args(["--seed", "7", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    let line = |op: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(op))
            .unwrap_or_else(|| panic!("{stdout}"))
            .to_owned()
    };
    let provide: Vec<String> = line("provide").split_whitespace().map(str::to_owned).collect();
    let retrieval: Vec<String> = line("retrieval").split_whitespace().map(str::to_owned).collect();
    assert_eq!(provide[1], "3", "{stdout}");
    assert_eq!(retrieval[1], "6", "{stdout}");
    assert_eq!(retrieval[2], "100.0%", "{stdout}");
    assert!(stdout.contains("peak RSS"), "{stdout}");

    // The embedded store holds the run as parsec's tables would, and the summary says where.
    assert!(
        stdout.contains(&format!("stored in sqlite://{}", database.display())),
        "{stdout}"
    );
    assert!(stdout.contains("sqlite3 "), "{stdout}");
    let stored = common::sqlite_counts(&database);
    assert_eq!(stored.provides, 3);
    assert_eq!(stored.retrievals, 6);
    assert_eq!(stored.schedulers, 1);
    assert_eq!(stored.nodes, 3);
    assert_eq!(stored.nodes_with_heartbeat, 3, "servers heartbeat once ready");
    assert_eq!(stored.nodes_offline, 3, "servers are marked offline at the end");
    assert_eq!(stored.rounds, 3, "each round has its own round id");

    // --report DIR leaves the run's report, read back from the store, in every format.
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap()).unwrap();
    let attempts = |operation: &str| -> u64 {
        json["operations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["operation"] == operation)
            .unwrap()["by_region"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["attempts"].as_u64().unwrap())
            .sum()
    };
    assert_eq!((attempts("provide"), attempts("retrieval")), (3, 6), "{json}");
    for file in [
        "report.html",
        "report.md",
        "report.csv",
        "charts/cdf-retrieval.svg",
    ] {
        assert!(report.join(file).exists(), "{file}: {stdout}");
    }
    assert!(
        stdout.contains(&format!("report: {}", report.join("report.html").display())),
        "{stdout}"
    );
}

/// `parsec simulate` into a fresh SQLite file; returns stdout and the stored retrieval durations.
fn simulate(database: &std::path::Path, seed: &str) -> (String, Vec<(String, f64)>) {
    let output = Command::new(PARSEC)
        .args([
            "simulate",
            "--nodes",
            "3000",
            "--rounds",
            "5",
            "--servers",
            "4",
            "--no-progress",
        ])
        .args([
            "--seed",
            seed,
            "--database-url",
            &format!("sqlite://{}", database.display()),
        ])
        .output()
        .unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    (stdout, stored_retrievals(database, "fleet", false))
}

/// `(nodes_ecs.<column>, duration)` of the retrievals stored in the SQLite `database`, in order:
/// every one, or only those that found a record.
fn stored_retrievals(database: &std::path::Path, column: &str, found_only: bool) -> Vec<(String, f64)> {
    use diesel::{Connection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        key: String,
        #[diesel(sql_type = diesel::sql_types::Double)]
        duration: f64,
    }
    let mut conn = diesel::SqliteConnection::establish(database.to_str().unwrap()).unwrap();
    let filter = if found_only { "WHERE r.error IS NULL" } else { "" };
    let rows: Vec<Row> = diesel::sql_query(format!(
        "SELECT n.{column} AS key, r.duration AS duration FROM retrievals_ecs r \
         JOIN nodes_ecs n ON n.id = r.node_id {filter} ORDER BY r.id"
    ))
    .load(&mut conn)
    .unwrap();
    rows.into_iter().map(|r| (r.key, r.duration)).collect()
}

#[test]
fn simulate_writes_rounds_to_the_same_tables_and_repeats_with_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.sqlite");
    let (stdout, retrievals) = simulate(&first, "5");
    for expected in [
        "durations are virtual time",
        "hops p50/p90/max",
        "retrieval p50",
        "network built in",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
    let stored = common::sqlite_counts(&first);
    assert_eq!(stored.provides, 5);
    assert_eq!(stored.retrievals, 15);
    assert_eq!(stored.nodes, 4);
    assert_eq!(
        stored.nodes_offline, 4,
        "simulated servers are marked offline at the end"
    );
    assert_eq!(stored.rounds, 5);
    assert_eq!(retrievals.len(), 15);
    assert!(
        retrievals.iter().all(|(fleet, d)| fleet == "sim" && *d > 0.0),
        "{retrievals:?}"
    );

    // Same seed, same virtual durations; another seed, others.
    let (_, again) = simulate(&dir.path().join("again.sqlite"), "5");
    assert_eq!(again, retrievals);
    let (_, other) = simulate(&dir.path().join("other.sqlite"), "6");
    assert_ne!(other, retrievals);
}

/// Runs `parsec <command>` with each case's flags on a fresh SQLite path: each must fail with
/// its message and no panic, before the storage opens (the file is never created).
fn assert_refused(command: &[&str], cases: &[(Vec<&str>, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("never.sqlite");
    for (args, message) in cases {
        let output = Command::new(PARSEC)
            .args(command)
            .arg("--database-url")
            .arg(format!("sqlite://{}", database.display()))
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // Refused before the storage opened: nothing was started, so nothing is left online.
    assert!(!database.exists(), "a refused {command:?} touched the database");
}

#[test]
fn simulate_rejects_bad_parameters_with_the_fix() {
    assert_refused(
        &["simulate", "--nodes", "100", "--no-progress"],
        &[
            (vec!["--servers", "1"], "--servers must be at least 2"),
            (vec!["--error-rate", "1.5"], "--error-rate must be within 0 and 1"),
            (vec!["--delay-range", "2s..1s"], "above the maximum"),
            (vec!["--k", "0"], "--k, --alpha and --beta must be at least 1"),
            (
                vec!["--fleets", "optprov,optprov"],
                "each fleet must have its own name",
            ),
            (vec!["--fleets", "fast"], "expected classic, optprov or fullrt"),
            (
                vec!["--fleets", "default,fullrt", "--servers", "60"],
                "cannot exceed --nodes",
            ),
        ],
    );
}

#[test]
fn simulated_fleets_store_their_rows_under_their_own_names() {
    let (stdout, per_fleet, _) = run_fleets(&[
        "simulate",
        "--nodes",
        "3000",
        "--rounds",
        "6",
        "--servers",
        "2",
        "--fleets",
        "default,optprov,fullrt",
    ]);
    assert!(
        stdout.contains("default (classic), optprov (optprov), fullrt (fullrt)"),
        "{stdout}"
    );
    // Two servers per fleet; each round one server provides and the five others, of every
    // fleet, retrieve: 6 rounds × 5 retrievals, with every fleet among the retrievers.
    assert_eq!(
        per_fleet.iter().map(|f| f.fleet.as_str()).collect::<Vec<_>>(),
        ["default", "fullrt", "optprov"]
    );
    assert!(
        per_fleet.iter().all(|f| f.nodes == 2 && f.retrievals >= 6),
        "{per_fleet:?}"
    );
    assert_eq!(
        per_fleet.iter().map(|f| f.retrievals).sum::<i64>(),
        30,
        "{per_fleet:?}"
    );
    assert_eq!(
        per_fleet.iter().map(|f| f.provides).sum::<i64>(),
        6,
        "{per_fleet:?}"
    );
}

/// Per fleet of an SQLite database: its servers, and their successful retrievals and provides.
#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct PerFleet {
    #[diesel(sql_type = diesel::sql_types::Text)]
    fleet: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    nodes: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    retrievals: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    provides: i64,
}

/// Runs `parsec <args>` on a fresh SQLite database; its output, which must hold the per-fleet
/// table, what the database holds per fleet, and the failed retrievals.
fn run_fleets(args: &[&str]) -> (String, Vec<PerFleet>, Vec<Miss>) {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("fleets.sqlite");
    let output = Command::new(PARSEC)
        .args(args)
        .args(["--no-progress", "--database-url"])
        .arg(format!("sqlite://{}", database.display()))
        .output()
        .unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    assert!(
        stdout.contains("fleet     retrieval p50"),
        "the per-fleet table:\n{stdout}"
    );
    (stdout, per_fleet(&database), misses_by_fleet(&database))
}

fn per_fleet(database: &std::path::Path) -> Vec<PerFleet> {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::SqliteConnection::establish(database.to_str().unwrap()).unwrap();
    diesel::sql_query(
        "SELECT n.fleet AS fleet, count(DISTINCT n.id) AS nodes, \
         (SELECT count(*) FROM retrievals_ecs r JOIN nodes_ecs m ON m.id = r.node_id \
          WHERE m.fleet = n.fleet AND r.error IS NULL) AS retrievals, \
         (SELECT count(*) FROM provides_ecs p JOIN nodes_ecs m ON m.id = p.node_id \
          WHERE m.fleet = n.fleet AND p.error IS NULL) AS provides \
         FROM nodes_ecs n GROUP BY n.fleet ORDER BY n.fleet",
    )
    .load(&mut conn)
    .unwrap()
}

/// `parsec testnet --fleets`: real peers of every strategy side by side, each server's rows
/// stored under its own fleet, every fleet providing and retrieving what the others provide.
#[test]
fn testnet_fleets_of_every_strategy_store_their_rows_under_their_own_names() {
    let (stdout, per_fleet, misses) = run_fleets(&[
        "testnet",
        "--peers",
        "40",
        "--servers",
        "2",
        "--rounds",
        "8",
        "--transport",
        "memory",
        "--fleets",
        "default,classic,optprov,fullrt",
    ]);
    assert!(
        stdout.contains("8 servers (default, classic, optprov, fullrt)"),
        "{stdout}"
    );
    assert_eq!(
        per_fleet.iter().map(|f| f.fleet.as_str()).collect::<Vec<_>>(),
        ["classic", "default", "fullrt", "optprov"]
    );
    // 8 rounds, the provider rotating over the 8 servers: each provides once and the seven
    // others, of every fleet, find its record. A `default` store counts once the peer read the
    // record and closed the stream (our kad patch), but that peer's swarm files it a moment
    // later, so on a loaded machine a retrieval can reach it first (method.md); such a miss is
    // allowed right after a `default` provide only, and is counted against the retriever's fleet.
    assert!(
        misses
            .iter()
            .all(|m| m.provider_fleet == "default" && m.error == "not found"),
        "misses after a provide that waits for the peers: {misses:?}"
    );
    for fleet in &per_fleet {
        let missed = misses.iter().filter(|m| m.fleet == fleet.fleet).count() as i64;
        assert_eq!(
            (fleet.nodes, fleet.provides, fleet.retrievals + missed),
            (2, 2, 14),
            "{per_fleet:?} {misses:?}"
        );
    }
}

/// The configuration of every production deployment, as the issue that found local-store
/// "retrievals" ran it: server-mode servers only, a WAN delay and a settle time, so every
/// retriever holds the record itself before it looks. No retrieval may end sooner than a round
/// trip (0.1 s), in any fleet.
#[test]
fn server_mode_retrievers_that_hold_the_record_still_look_it_up_in_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("server-mode.sqlite");
    let output = Command::new(PARSEC)
        .args([
            "testnet",
            "--peers",
            "0",
            "--servers",
            "2",
            "--server-mode",
            "--latency",
            "100ms",
        ])
        .args(["--settle", "1s", "--rounds", "4", "--transport", "memory"])
        .args([
            "--fleets",
            "default,classic,optprov,fullrt",
            "--no-progress",
            "--database-url",
        ])
        .arg(format!("sqlite://{}", database.display()))
        .output()
        .unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    let found = stored_retrievals(&database, "fleet", true);
    for fleet in ["default", "classic", "optprov", "fullrt"] {
        assert!(
            found.iter().any(|(f, _)| f == fleet),
            "{fleet} found nothing:\n{stdout}"
        );
    }
    let too_fast: Vec<&(String, f64)> = found.iter().filter(|(_, duration)| *duration < 0.1).collect();
    assert!(
        too_fast.is_empty(),
        "retrievals faster than a round trip: {too_fast:?}\n{stdout}"
    );
}

/// A failed retrieval of a testnet run: the retriever's fleet, the round's provider's fleet and
/// the error.
#[derive(diesel::QueryableByName, Debug)]
struct Miss {
    #[diesel(sql_type = diesel::sql_types::Text)]
    fleet: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    provider_fleet: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    error: String,
}

fn misses_by_fleet(database: &std::path::Path) -> Vec<Miss> {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::SqliteConnection::establish(database.to_str().unwrap()).unwrap();
    diesel::sql_query(
        "SELECT m.fleet AS fleet, pn.fleet AS provider_fleet, r.error AS error \
         FROM retrievals_ecs r JOIN nodes_ecs m ON m.id = r.node_id \
         JOIN provides_ecs p ON p.round_id = r.round_id JOIN nodes_ecs pn ON pn.id = p.node_id \
         WHERE r.error IS NOT NULL",
    )
    .load(&mut conn)
    .unwrap()
}

#[test]
fn testnet_rejects_a_run_that_cannot_measure_or_cannot_fit_before_it_starts() {
    assert_refused(
        &["testnet", "--no-progress"],
        &[
            (vec!["--servers", "1"], "--servers must be at least 2"),
            (vec!["--rounds", "0"], "--rounds must be at least 1"),
            (
                vec!["--fleets", "optprov,optprov"],
                "each fleet must have its own name",
            ),
            (
                vec!["--fleets", "optprov,nope"],
                "expected default, classic, optprov or fullrt",
            ),
            (vec!["--peers", "0"], "Add --server-mode"),
            (vec!["--peers", "100000000"], "Lower --peers"),
            // Fits in memory (8.7 GiB), not in the open-files limit (about a million).
            (
                vec!["--peers", "1000", "--transport", "tcp", "--start", "bootstrap"],
                "open files",
            ),
        ],
    );
}

/// `--profile` on the testnet: servers registered in the profile's first regions, the region
/// table printed, every retrieval at least its server's shortest round trip in the profile, and
/// `--latency` refused beside it.
#[test]
fn testnet_under_a_profile_places_servers_in_regions_and_pays_their_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("profile.sqlite");
    let output = Command::new(PARSEC)
        .args(["testnet", "--peers", "30", "--servers", "2", "--rounds", "2"])
        .args([
            "--transport",
            "memory",
            "--profile",
            "ipfs-2025",
            "--seed",
            "3",
            "--no-progress",
        ])
        .arg("--database-url")
        .arg(format!("sqlite://{}", database.display()))
        .output()
        .unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    assert!(stdout.contains("ipfs-2025 profile"), "{stdout}");
    let region_rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("eu ") || l.starts_with("na-east "))
        .collect();
    assert_eq!(region_rows.len(), 2, "{stdout}");

    let rows = stored_retrievals(&database, "region", true);
    assert_eq!(rows.len(), 2, "both rounds' retrievals found the record");
    let profile = parsec::sim::Profile::Ipfs2025.latency().regions();
    for (region, duration) in &rows {
        let index = profile
            .index_of(region)
            .unwrap_or_else(|| panic!("region {region:?}"));
        let shortest_ms = profile.rtt_ms[index].iter().copied().fold(f64::MAX, f64::min);
        assert!(
            *duration >= shortest_ms / 1000.0,
            "a retrieval from {region} took {duration} s, under its shortest round trip ({shortest_ms} ms)"
        );
    }

    assert_refused(
        &["testnet", "--no-progress", "--profile", "ipfs-2025"],
        &[(vec!["--latency", "100ms"], "cannot be used with")],
    );
}

#[test]
fn scheduler_rejects_settings_that_cannot_run_before_it_starts() {
    assert_refused(
        &["scheduler"],
        &[
            (vec!["--rounds", "0"], "--rounds must be at least 1"),
            (vec!["--fleets", " "], "--fleets needs at least one fleet name"),
        ],
    );
}

#[test]
fn health_fails_when_nothing_listens() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = Command::new(PARSEC)
        .args(["health", &format!("127.0.0.1:{port}"), "--timeout", "1s"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not ready"));
}

#[test]
fn two_server_processes_form_a_dht_and_serve_each_other() {
    // Both servers register in one embedded database, as a fleet shares one Postgres.
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("servers.sqlite");
    let url = format!("sqlite://{}", database.display());
    let [first, second] = common::two_servers(&url);
    assert!(
        first.tcp_multiaddr.contains("/p2p/12D3KooW"),
        "{}",
        first.tcp_multiaddr
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    while !(first.health() && second.health()) {
        assert!(Instant::now() < deadline, "servers never became ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Each heartbeats once its readiness poll (every 100 ms here) has seen it ready.
    while common::sqlite_counts(&database).nodes_with_heartbeat < 2 {
        assert!(Instant::now() < deadline, "ready servers never heartbeated");
        std::thread::sleep(Duration::from_millis(50));
    }

    let (provided, retrieved) = actix::System::new().block_on(async {
        let client = awc::Client::builder().timeout(Duration::from_secs(60)).finish();
        let provided: Value = client
            .post(format!("{}/provide", first.http))
            .send_json(&json!({"Content": "aGVsbG8gcGFyc2Vj"}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let cid = provided["CID"].as_str().unwrap().to_owned();
        let retrieved: Value = client
            .post(format!("{}/retrieve/{cid}", second.http))
            .send_json(&json!({}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (provided, retrieved)
    });
    assert_eq!(provided["Measurements"][0]["Error"], "", "{provided}");
    assert_eq!(retrieved["CID"], provided["CID"]);
    assert_eq!(retrieved["Measurements"][0]["Error"], "", "{retrieved}");

    assert!(second.terminate().success());
    assert!(first.terminate().success());
    let stored = common::sqlite_counts(&database);
    assert_eq!(stored.nodes, 2);
    assert_eq!(stored.nodes_offline, 2, "SIGTERM marks a server offline");
}

#[test]
fn an_interrupted_testnet_stores_what_it_measured() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("interrupted.sqlite");
    let child = common::testnet_command(100_000, "memory", &format!("sqlite://{}", database.display()))
        .args(["--latency", "20ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupted once a round is stored, however long the set-up took.
    let a_round_stored = || database.exists() && common::sqlite_counts(&database).provides >= 1;
    assert!(
        parsec::testing::process::wait_until(Duration::from_secs(120), a_round_stored),
        "no round was stored"
    );
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    let rounds: i64 = stdout
        .split(" rounds run")
        .next()
        .and_then(|head| head.rsplit(", ").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no round count in {stdout}"));
    assert!(rounds > 0 && rounds < 100_000, "{stdout}");
    let stored = common::sqlite_counts(&database);
    assert_eq!(stored.provides, rounds, "every finished round is stored");
    assert_eq!(stored.retrievals, 2 * rounds);
    assert_eq!(stored.nodes_offline, 3);
}

/// The isolated server: its only bootstrap peer refuses connections (the entry ends in a comma,
/// as a hand-edited env var does). It must not look alive: no readiness, no heartbeat, and a
/// provide through it is an error that says the record reached nobody.
#[test]
fn a_server_whose_bootstrap_peer_is_unreachable_is_not_ready_and_does_not_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("isolated.sqlite");
    let url = format!("sqlite://{}", database.display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nobody =
        format!("/ip4/127.0.0.1/tcp/{port}/p2p/12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5,");
    let server = ServerProcess::start(&[
        "--database-url",
        &url,
        "--heartbeat-interval",
        "100ms",
        "--bootstrap",
        &nobody,
        "--connections",
        "cold",
    ]);
    // Three seconds of join attempts (with backoff) and readiness polls every 100 ms.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        assert!(!server.health(), "ready without a single peer");
        std::thread::sleep(Duration::from_millis(250));
    }
    let stored = common::sqlite_counts(&database);
    assert_eq!(stored.nodes, 1, "registered");
    assert_eq!(stored.nodes_with_heartbeat, 0, "an isolated server heartbeated");

    let (status, provided) = actix::System::new().block_on(async {
        let mut response = awc::Client::default()
            .post(format!("{}/provide", server.http))
            .send_json(&json!({"Content": "aGVsbG8gcGFyc2Vj"}))
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    });
    assert_eq!(status, 200, "{provided}");
    assert_eq!(provided["Measurements"][0]["Error"], "reached no peer");
    assert_eq!(provided["Connections"], "cold", "the flag reaches the report");
    assert_eq!(provided["RecordPeers"], 0);
    assert_eq!(provided["RoutingTableSize"], 0);
}

#[test]
fn provide_accepts_only_json() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("json.sqlite").display());
    let server = ServerProcess::start(&["--database-url", &url]);
    let statuses = actix::System::new().block_on(async {
        let client = awc::Client::default();
        let mut statuses = Vec::new();
        for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
            let mut response = client
                .post(format!("{}/provide", server.http))
                .insert_header(("content-type", content_type))
                .send_body(r#"{"Content":"aGVsbG8="}"#)
                .await
                .unwrap();
            let body: Value = response.json().await.unwrap();
            assert!(
                body["error"].as_str().unwrap().contains("application/json"),
                "{body}"
            );
            statuses.push(response.status().as_u16());
        }
        statuses
    });
    assert_eq!(statuses, [415, 415]);
}

#[test]
fn networks_lists_the_presets_with_their_protocols() {
    let output = Command::new(PARSEC)
        .args(["networks", "--bootstrap"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let listing = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "ipfs       amino       /ipfs/kad/1.0.0",
        "filecoin   calibnet    /fil/kad/calibrationnet/kad/1.0.0",
        "celestia   mocha       /celestia/mocha-4/kad/1.0.0",
        "polkadot   kusama      /ksmcc3/kad",
        "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    ] {
        assert!(
            listing.contains(expected),
            "{expected:?} missing from:\n{listing}"
        );
    }

    let unknown = Command::new(PARSEC)
        .args(["server", "dht", "--network", "nope"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("unknown network ipfs/nope") && stderr.contains("parsec networks"),
        "{stderr}"
    );
}

/// A scheduler marks a node offline after one failed readiness check; the node keeps running and
/// heartbeating, so its next heartbeat brings it back. A node that shut down stays offline.
#[test]
fn a_node_marked_offline_by_a_scheduler_comes_back_and_one_that_shut_down_stays_offline() {
    use parsec::db::{self, DatabaseTarget, Store};
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("recover.sqlite");
    let url = format!("sqlite://{}", database.display());
    let [first, second] = common::two_servers(&url);
    let beating = || common::sqlite_counts(&database).nodes_with_heartbeat == 2;
    assert!(
        parsec::testing::process::wait_until(Duration::from_secs(30), beating),
        "servers never heartbeated"
    );

    // What the scheduler does after a failed check: the same registry call, from this process.
    actix::System::new().block_on(async {
        let store = Store::open(&DatabaseTarget::Sqlite {
            path: database.clone(),
        })
        .await
        .unwrap();
        let registry = db::registry(&store);
        for node in [1, 2] {
            registry
                .mark_offline(parsec_actors::NodeId(node), chrono::Utc::now())
                .await
                .unwrap();
        }
    });
    assert_eq!(common::sqlite_counts(&database).nodes_offline, 2);
    let back = || common::sqlite_counts(&database).nodes_offline == 0;
    assert!(
        parsec::testing::process::wait_until(Duration::from_secs(5), back),
        "ready nodes stayed offline after heartbeating"
    );

    assert!(second.terminate().success());
    // The stopped node writes nothing more; the running one does, at its next heartbeat: wait for
    // that beat, then nothing may have flipped.
    let first_beat = || common::last_heartbeat(&database, 1);
    let before = first_beat();
    assert!(
        parsec::testing::process::wait_until(Duration::from_secs(10), || first_beat() != before),
        "the running server stopped heartbeating"
    );
    assert_eq!(
        common::sqlite_counts(&database).nodes_offline,
        1,
        "the node that shut down came back, or the running one was marked"
    );
    drop(first);
}

/// parsec's own command lines, as its Go binary takes them: global flags before the command,
/// its `--db-*` names, `server --fleet … dht …`, `--log-level`, `--debug`, `--startup-delay` and
/// `--dry-run`, against a real PostgreSQL.
#[test]
fn parsecs_command_lines_work_unchanged() {
    let pg = parsec::testing::TempPostgres::start().unwrap_or_else(|e| panic!("{e}"));
    let url = url::Url::parse(&pg.url()).unwrap();
    let port = url.port().unwrap_or(5432).to_string();
    #[rustfmt::skip]
    let db = [
        "--db-host", url.host_str().unwrap(), "--db-port", &port,
        "--db-name", url.path().trim_start_matches('/'), "--db-user", url.username(),
        "--db-password", url.password().unwrap_or(""), "--db-sslmode", "disable",
    ];
    let counts = |url: &str| actix::System::new().block_on(common::postgres_counts(url));
    // The database exists already, as parsec's deployments have it.
    actix::System::new().block_on(async {
        let target = parsec::db::DatabaseTarget::Postgres { url: pg.url() };
        parsec::db::Store::open(&target).await.unwrap();
    });

    // `parsec --db-host X server --fleet f dht --server-mode`, with parsec's startup delay.
    let started = Instant::now();
    let mut server = Command::new(PARSEC)
        .args(db)
        .args(["--log-level", "4", "--telemetry-port", "0"])
        .args(["server", "--fleet", "parsec-cli", "--startup-delay", "1s"])
        .args([
            "--server-host",
            "127.0.0.1",
            "--server-port",
            "0",
            "--peer-port",
            "0",
        ])
        .args(["dht", "--server-mode", "--network", "local"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let registered =
        parsec::testing::process::wait_until(Duration::from_secs(30), || counts(&pg.url()).nodes == 1);
    let waited = started.elapsed();
    let _ = server.kill();
    let _ = server.wait();
    assert!(registered, "the server never registered");
    assert!(
        waited >= Duration::from_secs(1),
        "registered after {waited:?}, before its startup delay"
    );

    // `parsec --debug --dry-run … scheduler`: it runs, and stores nothing, not even itself. Its
    // one server was stopped, so it measures nothing, and says so with its exit code.
    let scheduler = Command::new(PARSEC)
        .args(["--debug", "--dry-run"])
        .args(db)
        .args([
            "--telemetry-port",
            "0",
            "scheduler",
            "--fleets",
            "parsec-cli",
            "--rounds",
            "1",
            "--interval",
            "0s",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&scheduler.stdout);
    let stderr = String::from_utf8_lossy(&scheduler.stderr);
    assert_eq!(scheduler.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("(dry run)"), "{stdout}");
    assert!(
        stderr.contains("error: no round ran to its end (1 failed (most often: no ready node")
            && stderr.contains("nothing was measured"),
        "{stderr}"
    );
    let stored = counts(&pg.url());
    assert_eq!(
        (stored.schedulers, stored.nodes_offline),
        (0, 0),
        "a dry run wrote: {stored:?}"
    );
}

/// The bootstrap-load experiment: a star swept over two sizes; at each the hub carries every
/// other peer's connection, and the comparison lands in a table, a CSV and a chart.
#[test]
fn a_star_sweep_compares_the_bootstrap_peer_with_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let output = Command::new(PARSEC)
        .args([
            "testnet",
            "--topology",
            "star",
            "--sweep",
            "20,40",
            "--servers",
            "2",
            "--rounds",
            "2",
        ])
        .args(["--transport", "memory", "--no-progress", "--database-url"])
        .arg(format!("sqlite://{}", dir.path().join("star.sqlite").display()))
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    assert!(stdout.contains("=== sweep 2/2: 40 peers ==="), "{stdout}");
    let mut csv = ::csv::Reader::from_path(report.join("bootstrap-load.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    for peers in ["20", "40"] {
        let connections = rows
            .iter()
            .find(|r| &r[0] == peers && &r[1] == "connections")
            .unwrap_or_else(|| panic!("no connections row for {peers}: {rows:?}"));
        let hub: f64 = connections[2].parse().unwrap();
        let median: f64 = connections[3].parse().unwrap();
        // Every other background peer and both servers dialled the hub.
        let spokes = peers.parse::<f64>().unwrap() - 1.0 + 2.0;
        assert!(
            hub >= spokes && hub > median,
            "{peers} peers: hub {hub}, others' median {median}"
        );
        assert!(report.join(format!("peers-{peers}/report.html")).exists());
    }
    let svg = std::fs::read_to_string(report.join("bootstrap-load.svg")).unwrap();
    roxmltree::Document::parse(&svg).unwrap();
    assert!(stdout.contains("bootstrap load (star start"), "{stdout}");
}

/// `parsec testnet --protocol gossipsub`: the pubsub benchmark's sweep on real peers, every
/// subscribed peer receiving every message, the table per point and the seed's two charts.
#[test]
fn testnet_gossipsub_sweep_delivers_every_message_and_draws_the_charts() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("pubsub");
    let output = Command::new(PARSEC)
        .args([
            "testnet",
            "--protocol",
            "gossipsub",
            "--sweep-hosts",
            "6,12",
            "--messages",
            "3,6",
        ])
        .args([
            "--iterations",
            "2",
            "--topics",
            "2",
            "--transport",
            "memory",
            "--heartbeat",
            "200ms",
        ])
        .args(["--seed", "3", "--no-progress", "--report"])
        .arg(&report)
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.path().join("pubsub.sqlite").display()))
        .output()
        .unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cells| cells.len() >= 11 && cells[0].parse::<usize>().is_ok())
        .collect();
    let points: Vec<(&str, &str)> = rows.iter().map(|cells| (cells[0], cells[1])).collect();
    assert_eq!(
        points,
        [("6", "3"), ("6", "6"), ("12", "3"), ("12", "6")],
        "{stdout}"
    );
    for cells in &rows {
        assert_eq!(cells[2], "2", "iterations: {stdout}");
        assert_eq!(
            cells[5], "100.00%",
            "every subscribed peer gets every message: {stdout}"
        );
    }
    let csv = std::fs::read_to_string(report.join("pubsub.csv")).unwrap();
    // 12 hosts, 6 messages, 2 iterations: 11 receivers × 6 × 2 deliveries expected, all made.
    assert!(
        csv.lines()
            .any(|l| l.starts_with("12,6,2,") && l.contains(",132,132,")),
        "{csv}"
    );
    for chart in ["pubsub-duration.svg", "pubsub-memory.svg"] {
        let svg = std::fs::read_to_string(report.join(chart)).unwrap();
        let document = roxmltree::Document::parse(&svg).unwrap();
        let texts: Vec<&str> = document
            .descendants()
            .filter_map(|n| n.text())
            .map(str::trim)
            .collect();
        assert!(
            texts.contains(&"hosts") && texts.contains(&"6 messages"),
            "{chart}: {texts:?}"
        );
    }
    // Beside them, the stored rows' report: every delivery (11×6×2 + 11×3×2 + 5×6×2 + 5×3×2 =
    // 288) and every publish (6×2 + 3×2, twice = 36), all made.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap()).unwrap();
    let attempts = |operation: &str| -> (u64, u64) {
        let groups = json["operations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["operation"] == operation)
            .unwrap_or_else(|| panic!("no {operation} in {json}"))["by_region"]
            .as_array()
            .unwrap()
            .clone();
        groups.iter().fold((0, 0), |(a, s), g| {
            (
                a + g["attempts"].as_u64().unwrap(),
                s + g["successes"].as_u64().unwrap(),
            )
        })
    };
    assert_eq!(attempts("delivery"), (288, 288), "{json}");
    assert_eq!(attempts("publish"), (36, 36), "{json}");
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(
        html.contains("dup/delivery") && html.contains("rust-libp2p"),
        "{html}"
    );
}

#[test]
fn testnet_gossipsub_rejects_what_cannot_measure_with_the_fix() {
    assert_refused(
        &["testnet", "--protocol", "gossipsub", "--no-progress"],
        &[
            (vec!["--sweep-hosts", "1,10"], "at least 2 hosts"),
            (
                vec!["--messages", "0"],
                "--messages: every count must be at least 1",
            ),
            (vec!["--mesh-n-low", "7"], "--mesh-n-low"),
            (vec!["--validation", "lax"], "expected strict"),
            (vec!["--message-bytes", "100000"], "at most 65536"),
            (vec!["--churn-topics", "0.6", "--churn-network", "0.5"], "below 1"),
        ],
    );
}

/// Under churn (hosts leaving their topics and the network between iterations, and coming
/// back), the hosts that were away receive nothing and those present receive ≥ 99 %.
#[test]
fn testnet_gossipsub_under_churn_delivers_to_those_present_and_none_to_those_away() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("churn");
    let output = Command::new(PARSEC)
        .args([
            "testnet",
            "--protocol",
            "gossipsub",
            "--sweep-hosts",
            "30",
            "--messages",
            "8",
        ])
        .args([
            "--iterations",
            "6",
            "--topics",
            "2",
            "--transport",
            "memory",
            "--heartbeat",
            "200ms",
        ])
        .args([
            "--churn-topics",
            "0.2",
            "--churn-network",
            "0.1",
            "--seed",
            "5",
            "--no-progress",
            "--report",
        ])
        .arg(&report)
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.path().join("churn.sqlite").display()))
        .output()
        .unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    let csv = std::fs::read_to_string(report.join("pubsub.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let values: Vec<&str> = lines.next().unwrap().split(',').collect();
    let field = |name: &str| -> f64 {
        let index = header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("{name}: {csv}"));
        values[index].parse().unwrap()
    };
    // Five iterations after the first have churn: 6 hosts leave their topics and 3 the network
    // before each.
    assert_eq!(
        (field("left_topics"), field("left_network")),
        (30.0, 15.0),
        "{csv}"
    );
    assert_eq!(field("received_while_away"), 0.0, "{stdout}");
    let ratio = field("delivered") / field("expected");
    assert!(
        ratio >= 0.99,
        "delivery ratio among the hosts present {ratio}: {stdout}"
    );
    // The present hosts of the first iteration: all but the publisher.
    assert!(
        field("expected") < (6 * 8 * 29) as f64,
        "away hosts are not expected: {csv}"
    );
}

/// The clock of a server process as the scheduler estimates it: `ProbeClock` on the
/// `RemoteNode` its pubsub rounds send, 8 round trips to `/pubsub/clock`.
async fn clock_offset(server: &ServerProcess) -> parsec_actors::pubsub::clock::ClockOffset {
    use actix::Actor as _;
    let remote = parsec::api::client::RemoteNode::new(server.http.clone(), Default::default()).start();
    remote
        .send(parsec_actors::pubsub::node::ProbeClock { samples: 8 })
        .await
        .unwrap()
        .unwrap()
}

/// Two server processes speaking gossipsub, the publisher's clock skewed 7 s ahead (libfaketime):
/// the offsets estimated from HTTP round trips are right within their stated uncertainty, and the
/// latency corrected by them is a latency, where the raw difference of the two clocks is not.
#[test]
fn pubsub_across_server_processes_corrects_a_skewed_clock() {
    const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: apt-get install -y faketime"
    );
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pubsub.sqlite").display());
    let gossip = ["--gossipsub", "--heartbeat", "200ms", "--database-url", &url];
    let skewed = [
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME", "+7s"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let publisher = ServerProcess::start_with_env(&gossip, &skewed);
    let mut joining = gossip.to_vec();
    joining.extend(["--bootstrap", &publisher.tcp_multiaddr]);
    let receiver = ServerProcess::start(&joining);
    let plain = ServerProcess::start(&["--database-url", &url]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(publisher.health() && receiver.health()) {
        assert!(Instant::now() < deadline, "servers never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }

    actix::System::new().block_on(async {
        let client = common::client();
        let ahead = clock_offset(&publisher).await;
        let level = clock_offset(&receiver).await;
        assert!(
            (ahead.offset - 7.0).abs() <= ahead.uncertainty + 1e-6,
            "{ahead:?}"
        );
        assert!(level.offset.abs() <= level.uncertainty + 1e-6, "{level:?}");
        assert!(
            ahead.uncertainty < 0.05 && level.uncertainty < 0.05,
            "{ahead:?} {level:?}"
        );

        for server in [&publisher, &receiver] {
            let status = client
                .post(format!("{}/pubsub/subscribe", server.http))
                .send_json(&json!({"topic": "blocks"}))
                .await
                .unwrap()
                .status();
            assert_eq!(status.as_u16(), 204);
        }
        // Until the receiver's subscription reached the publisher, gossipsub has nobody to send to.
        let (id, published) = loop {
            let id = uuid::Uuid::new_v4().to_string();
            let mut response = client
                .post(format!("{}/pubsub/publish", publisher.http))
                .send_json(&json!({"topic": "blocks", "message_id": id, "size": 512}))
                .await
                .unwrap();
            let body: Value = response.json().await.unwrap();
            if response.status().is_success() {
                break (id, body);
            }
            assert_eq!(response.status().as_u16(), 503, "{body}");
            assert!(
                body["error"].as_str().unwrap().contains("reached no peer"),
                "{body}"
            );
            assert!(
                Instant::now() < deadline,
                "the publisher never saw the subscription"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(published["message_id"], id.as_str());
        assert!(published["topic_peers"].as_u64().unwrap() >= 1, "{published}");
        let delivery: Value = client
            .get(format!("{}/pubsub/messages/{id}?wait_ms=5000", receiver.http))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(delivery["delivered"], true, "{delivery}");
        assert!(delivery["copies"].as_u64().unwrap() >= 1, "{delivery}");
        let sent = chrono::DateTime::from_timestamp_nanos(published["sent_at_ns"].as_i64().unwrap());
        let received = chrono::DateTime::from_timestamp_nanos(delivery["received_at_ns"].as_i64().unwrap());
        let raw = (received - sent).num_milliseconds();
        assert!(raw < -6_000, "the clocks are 7 s apart: {raw} ms");
        // The scheduler's own rule: a latency, not a clock error, and no more than the wait.
        let (latency, bound) = parsec_actors::pubsub::clock::delivery_latency(sent, ahead, received, level)
            .unwrap_or_else(|e| panic!("{e}: {ahead:?} {level:?}"));
        assert!(latency < Duration::from_secs(5), "{latency:?} ± {bound}");

        // What cannot be served is said, with the status that says whose fault it is.
        let status_of = |response: awc::http::StatusCode| response.as_u16();
        let too_big = client
            .post(format!("{}/pubsub/publish", publisher.http))
            .send_json(
                &json!({"topic": "blocks", "message_id": uuid::Uuid::new_v4().to_string(), "size": 100_000}),
            )
            .await
            .unwrap();
        assert_eq!(status_of(too_big.status()), 413);
        let bad_id = client
            .get(format!("{}/pubsub/messages/not-a-uuid", receiver.http))
            .send()
            .await
            .unwrap();
        assert_eq!(status_of(bad_id.status()), 400);
        let mut without = client
            .post(format!("{}/pubsub/subscribe", plain.http))
            .send_json(&json!({"topic": "blocks"}))
            .await
            .unwrap();
        assert_eq!(status_of(without.status()), 501);
        let body: Value = without.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("--gossipsub"), "{body}");
    });
    for server in [plain, receiver, publisher] {
        assert!(server.terminate().success());
    }
}
