//! `parsec scheduler` as deployed: separate `parsec server dht` processes on loopback forming
//! one DHT, a real Postgres, and faults — servers killed, hung, unreachable, or impostors; the
//! database restarted mid-run; two schedulers side by side; cross-fleet rounds.

mod common;

use std::{
    collections::BTreeSet,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use parsec::testing::TempPostgres;
use parsec::testing::{
    process::{start_fleet, start_joining, summary_figure, wait_until, SchedulerProcess},
    stored::{measurements, node_on_port, nodes, port_of, StoredMeasurement},
};

fn cluster() -> TempPostgres {
    TempPostgres::start().unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL: {e}"))
}

/// Waits until `count` nodes heartbeat (their servers are ready).
fn wait_for_live_nodes(url: &str, count: usize) {
    parsec::testing::stored::wait_for_live_nodes(url, count, Duration::from_secs(60));
}

fn provides(rows: &[StoredMeasurement]) -> Vec<&StoredMeasurement> {
    rows.iter().filter(|r| r.operation == "provide").collect()
}

fn retrievals_of<'a>(
    rows: &'a [StoredMeasurement],
    provide: &StoredMeasurement,
) -> Vec<&'a StoredMeasurement> {
    rows.iter()
        .filter(|r| r.operation == "retrieval" && r.round_id == provide.round_id)
        .collect()
}

/// The scheduler's summary says every row it recorded was stored, and none was dropped.
fn assert_nothing_lost(summary: &str) {
    assert_eq!(summary_figure(summary, "dropped"), 0, "{summary}");
    assert_eq!(
        summary_figure(summary, "rows recorded"),
        summary_figure(summary, "stored"),
        "{summary}"
    );
}

#[test]
fn a_scheduler_measures_server_processes_through_their_http_api() {
    let pg = cluster();
    let url = pg.url();
    // Servers require a bearer token; the scheduler sends it.
    let token = [("PARSEC_API_TOKEN", "fleet-secret")];
    let servers = start_fleet(3, "default", &url, &token);
    wait_for_live_nodes(&url, 3);

    let scheduler = SchedulerProcess::start(
        &url,
        &["--fleets", "default", "--interval", "0", "--rounds", "6"],
        &token,
    );
    let (status, summary) = scheduler.wait(Duration::from_secs(90));
    assert!(status.success(), "{summary}");
    assert_eq!(summary_figure(&summary, "rounds run"), 6, "{summary}");
    assert_eq!(summary_figure(&summary, "failed"), 0, "{summary}");
    assert_nothing_lost(&summary);

    let ids: Vec<i32> = servers
        .iter()
        .map(|s| node_on_port(&url, port_of(&s.http)).id)
        .collect();
    let rows = measurements(&url);
    let provides = provides(&rows);
    assert_eq!(provides.len(), 6);
    // The provider rotates over the nodes in id order.
    let providers: Vec<i32> = provides.iter().map(|p| p.node_id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(providers, [&sorted[..], &sorted[..]].concat());
    for provide in &provides {
        assert_eq!(provide.error, None, "{provide:?}");
        let retrievals = retrievals_of(&rows, provide);
        let retrievers: BTreeSet<i32> = retrievals.iter().map(|r| r.node_id).collect();
        let expected: BTreeSet<i32> = ids.iter().copied().filter(|&id| id != provide.node_id).collect();
        assert_eq!(retrievers, expected, "the other two nodes retrieve");
        for retrieval in retrievals {
            assert_eq!(retrieval.cid, provide.cid);
            assert_eq!(retrieval.error, None, "{retrieval:?}");
        }
    }
    assert_eq!(rows.len(), 18);
    assert!(rows.iter().all(|r| r.scheduler_id == 1));
}

/// A fake parsec server on loopback that answers readiness (or not) but never answers a
/// provide or retrieval.
struct FakeServer {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl FakeServer {
    /// Accepts connections and never answers anything (not even readiness).
    fn silent() -> Self {
        Self::spawn(false)
    }

    /// Answers `GET /readiness` with 200 and hangs on everything else.
    fn hanging() -> Self {
        Self::spawn(true)
    }

    fn spawn(ready: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::spawn(move || serve_fake(stream, ready));
            }
        });
        Self { port, stop }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve_fake(mut stream: TcpStream, ready: bool) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let Ok(read) = stream.read(&mut buffer) else {
            return;
        };
        if read == 0 {
            return;
        }
        request.extend_from_slice(&buffer[..read]);
        let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let is_readiness = request.starts_with(b"GET /readiness");
        request.drain(..end + 4);
        if ready && is_readiness {
            let body = r#"{"ready":true,"routing_table_size":1}"#;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(response.as_bytes()).is_err() {
                return;
            }
        } else {
            // Hold the connection open without a word until the client gives up.
            let _ = stream.read_to_end(&mut Vec::new());
            return;
        }
    }
}

/// Registers a node at `port` in the database and heartbeats for it until dropped, as a
/// server would that then misbehaves.
struct RegisteredFake {
    stop: Arc<AtomicBool>,
}

impl RegisteredFake {
    fn register(url: &str, port: u16) -> Self {
        use parsec::db::{DatabaseTarget, Store};
        use parsec_actors::Registry;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let target = DatabaseTarget::Postgres { url: url.to_owned() };
        let (registered_tx, registered) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let store = Store::open(&target).await.unwrap();
                let mut registration = parsec_actors::testing::sample_registration();
                registration.server_port = port;
                registration.peer_id = format!("12D3KooWfake{port}");
                let id = store.register_node(registration).await.unwrap();
                store.heartbeat(id, chrono::Utc::now()).await.unwrap();
                registered_tx.send(()).unwrap();
                // A beat a minute, as servers do by default: each beat clears an older offline
                // mark (a node that proves itself alive comes back), so a faster fake would undo
                // the scheduler's marks between the test's looks at them.
                let mut last_beat = std::time::Instant::now();
                while !stopping.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if last_beat.elapsed() >= Duration::from_secs(60) {
                        let _ = store.heartbeat(id, chrono::Utc::now()).await;
                        last_beat = std::time::Instant::now();
                    }
                }
            });
        });
        registered.recv_timeout(Duration::from_secs(30)).unwrap();
        Self { stop }
    }
}

impl Drop for RegisteredFake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// More nodes registered than ready: a node that refuses connections, one that accepts and
/// never answers, and one that answers readiness but hangs on work. Each costs one timeout;
/// the rounds go on with the real servers and no row names a node that did not measure it.
#[test]
fn faulty_servers_cost_one_timeout_each_and_never_a_round() {
    let pg = cluster();
    let url = pg.url();
    let servers = start_fleet(3, "default", &url, &[]);
    wait_for_live_nodes(&url, 3);

    let unreachable_port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let silent = FakeServer::silent();
    let hanging = FakeServer::hanging();
    let _fakes: Vec<RegisteredFake> = [unreachable_port, silent.port, hanging.port]
        .iter()
        .map(|&port| RegisteredFake::register(&url, port))
        .collect();
    let [unreachable_id, silent_id, hanging_id] =
        [unreachable_port, silent.port, hanging.port].map(|port| node_on_port(&url, port).id);
    let real_ids: Vec<i32> = servers
        .iter()
        .map(|s| node_on_port(&url, port_of(&s.http)).id)
        .collect();

    // Short timeouts keep the test short; a real provide here takes milliseconds.
    let mut scheduler = SchedulerProcess::start(
        &url,
        &[
            "--interval",
            "0",
            "--readiness-timeout",
            "1s",
            "--retrieve-timeout",
            "2s",
            "--provide-timeout",
            "3s",
        ],
        &[],
    );
    // Enough rounds that the hanging node has provided (and timed out) once.
    assert!(
        wait_until(Duration::from_secs(90), || provides(&measurements(&url)).len()
            >= 6),
        "rounds stopped: {}",
        scheduler.log()
    );
    let offline = |id: i32| {
        nodes(&url)
            .iter()
            .any(|n| n.id == id && n.offline_since.is_some())
    };
    assert!(
        offline(unreachable_id),
        "a node that refuses connections is marked offline"
    );
    assert!(
        offline(silent_id),
        "a node that never answers readiness is marked offline"
    );
    assert!(
        !offline(hanging_id),
        "a node that answers readiness stays in the fleet"
    );
    assert!(scheduler.running(), "the scheduler exited: {}", scheduler.log());

    let log = scheduler.log();
    let (status, summary) = scheduler.terminate(Duration::from_secs(60));
    assert!(status.success(), "{summary}\n{log}");
    assert_nothing_lost(&summary);
    let hung = format!("node-{hanging_id}");
    assert!(
        log.contains(&format!("node={hung} error=node did not answer within 2s")),
        "a hung retrieval costs its timeout: {log}"
    );
    assert!(
        log.contains(&format!("provider {hung} failed: node did not answer within 3s")),
        "a hung provide costs its timeout: {log}"
    );

    let rows = measurements(&url);
    assert!(!rows.is_empty());
    for row in &rows {
        assert!(
            real_ids.contains(&row.node_id),
            "row of a node that never measured: {row:?}"
        );
        assert_eq!(row.error, None, "{row:?}");
    }
    assert_eq!(rows.len() as u64, summary_figure(&summary, "stored"));
}

/// SIGTERM while a round waits on a hung retrieval: the round gets its grace, is abandoned, and
/// the scheduler exits at once with what it measured stored and nothing invented.
#[test]
fn shutdown_abandons_a_stuck_round_after_its_grace() {
    let pg = cluster();
    let url = pg.url();
    let servers = start_fleet(2, "default", &url, &[]);
    wait_for_live_nodes(&url, 2);
    let hanging = FakeServer::hanging();
    let _fake = RegisteredFake::register(&url, hanging.port);
    let first_real = servers
        .iter()
        .map(|s| node_on_port(&url, port_of(&s.http)).id)
        .min()
        .unwrap();

    let scheduler = SchedulerProcess::start(
        &url,
        &[
            "--interval",
            "0",
            "--retrieve-timeout",
            "120s",
            "--shutdown-grace",
            "1s",
        ],
        &[],
    );
    // The first round: the first real node provides; the hanging node's retrieval never ends.
    assert!(
        wait_until(Duration::from_secs(60), || measurements(&url).len() >= 2),
        "the first round's provide and real retrieval were not stored: {}",
        scheduler.log()
    );
    let terminated = std::time::Instant::now();
    let (status, summary) = scheduler.terminate(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
    assert!(
        terminated.elapsed() < Duration::from_secs(15),
        "shutdown waited for the hung request"
    );
    assert_eq!(summary_figure(&summary, "rounds run"), 0, "{summary}");
    assert_eq!(
        summary_figure(&summary, "failed"),
        1,
        "the stuck round is abandoned: {summary}"
    );
    assert_nothing_lost(&summary);
    let rows = measurements(&url);
    assert_eq!(
        rows.len(),
        2,
        "the provide and the real retrieval, nothing for the hung node: {rows:?}"
    );
    assert_eq!(provides(&rows)[0].node_id, first_real);
}

/// The second SIGTERM abandons a hung round at once, long before its grace, and says so in the
/// words docs/operations.md quotes; what the round stored before stays.
#[test]
fn a_second_signal_abandons_the_round_before_its_grace() {
    let pg = cluster();
    let url = pg.url();
    let servers = start_fleet(2, "default", &url, &[]);
    wait_for_live_nodes(&url, 2);
    let hanging = FakeServer::hanging();
    let _fake = RegisteredFake::register(&url, hanging.port);
    let scheduler = SchedulerProcess::start(
        &url,
        &[
            "--interval",
            "0",
            "--retrieve-timeout",
            "120s",
            "--shutdown-grace",
            "100s",
        ],
        &[],
    );
    assert!(
        wait_until(Duration::from_secs(60), || measurements(&url).len() >= 2),
        "the first round's provide and real retrieval were not stored: {}",
        scheduler.log()
    );
    let signalled = std::time::Instant::now();
    scheduler.signal("TERM");
    // The first signal grants the hung round its 100 s grace.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!scheduler.log().contains("second signal"));
    scheduler.signal("TERM");
    let said = wait_until(Duration::from_secs(10), || {
        scheduler.log().contains("second signal")
    });
    let log = scheduler.log();
    assert!(said, "{log}");
    let (status, summary) = scheduler.wait(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
    assert!(
        signalled.elapsed() < Duration::from_secs(20),
        "the second signal waited for the grace"
    );
    assert_eq!(summary_figure(&summary, "failed"), 1, "abandoned: {summary}");
    assert_nothing_lost(&summary);
    assert_eq!(measurements(&url).len(), 2, "the round's stored rows stay");
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md")).unwrap();
    let line = log.lines().find(|l| l.starts_with("second signal")).unwrap();
    assert!(docs.contains(line), "printed, not documented: {line}");
    drop(servers);
}

/// One scheduler per fleet: a second one started with `--if-fleet-locked exit` exits saying
/// which connection holds the fleet; one that waits (the default, as in a rolling deploy) takes
/// over when the first stops, and only then registers and measures.
#[test]
fn a_second_scheduler_of_a_fleet_waits_or_exits_with_the_reason() {
    let pg = cluster();
    let url = pg.url();
    let first = SchedulerProcess::start(&url, &["--interval", "1h"], &[]);
    assert!(
        wait_until(Duration::from_secs(30), || first
            .log()
            .contains("fleet lock taken")),
        "{}",
        first.log()
    );
    let mut refused = SchedulerProcess::start(&url, &["--if-fleet-locked", "exit"], &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while refused.running() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the reader thread take the last lines.
    std::thread::sleep(Duration::from_millis(200));
    let reason = refused.log();
    assert!(
        reason.contains("fleet default is measured by another scheduler (connection ")
            && reason.contains("--if-fleet-locked exit"),
        "{reason}"
    );
    let (status, _) = refused.wait(Duration::from_secs(5));
    assert!(!status.success());
    let waiting = SchedulerProcess::start(&url, &["--interval", "1h"], &[]);
    assert!(
        wait_until(Duration::from_secs(30), || waiting
            .log()
            .contains("is measured by another scheduler (connection ")),
        "{}",
        waiting.log()
    );
    assert!(
        !waiting.log().contains("scheduler registered"),
        "{}",
        waiting.log()
    );
    // It measured nothing (no server): its exit status says so; what matters is that it left.
    let _ = first.terminate(Duration::from_secs(30));
    assert!(
        wait_until(Duration::from_secs(30), || waiting
            .log()
            .contains("the other scheduler has stopped")),
        "{}",
        waiting.log()
    );
    assert!(
        wait_until(Duration::from_secs(10), || waiting
            .log()
            .contains("scheduler registered")),
        "{}",
        waiting.log()
    );
}

/// A server killed with SIGKILL while rounds run back to back: it cannot mark itself offline,
/// so the scheduler does; the others keep being measured; no row of the dead node is dated
/// after its death.
#[test]
fn a_server_killed_mid_run_is_marked_offline_and_the_rest_measured() {
    let pg = cluster();
    let url = pg.url();
    let mut servers = start_fleet(4, "default", &url, &[]);
    wait_for_live_nodes(&url, 4);
    let real_ids: Vec<i32> = servers
        .iter()
        .map(|s| node_on_port(&url, port_of(&s.http)).id)
        .collect();
    let mut scheduler = SchedulerProcess::start(&url, &["--interval", "0"], &[]);
    let provide_count = || provides(&measurements(&url)).len();
    assert!(
        wait_until(Duration::from_secs(60), || provide_count() >= 4),
        "no rounds: {}",
        scheduler.log()
    );

    let victim = servers.pop().unwrap();
    let victim_id = node_on_port(&url, port_of(&victim.http)).id;
    let killed_at = chrono::Utc::now();
    victim.kill();
    let offline = |id: i32| {
        nodes(&url)
            .iter()
            .any(|n| n.id == id && n.offline_since.is_some())
    };
    assert!(
        wait_until(Duration::from_secs(60), || offline(victim_id)),
        "the killed server was never marked offline: {}",
        scheduler.log()
    );
    // The survivors' DHT still lists the dead peer, so their provides may wait on dialling it:
    // that is a real measurement, and the rounds go on.
    let before = provide_count();
    assert!(
        wait_until(Duration::from_secs(120), || provide_count() >= before + 3),
        "rounds stopped after the kill: {}",
        scheduler.log()
    );
    assert!(scheduler.running(), "the scheduler exited: {}", scheduler.log());
    let (status, summary) = scheduler.terminate(Duration::from_secs(240));
    assert!(status.success(), "{summary}");
    assert_nothing_lost(&summary);

    let rows = measurements(&url);
    for row in &rows {
        assert!(real_ids.contains(&row.node_id), "{row:?}");
        if row.node_id == victim_id {
            assert!(
                row.started_at < killed_at,
                "row of the killed node after its death: {row:?}"
            );
        }
    }
    assert!(rows.iter().filter(|r| r.started_at > killed_at).count() >= 3);
    assert_eq!(rows.len() as u64, summary_figure(&summary, "stored"));
}

/// Postgres stops for 10 s mid-run and comes back: the scheduler does not crash, keeps
/// measuring the nodes it knew, and stores every row once.
#[test]
fn a_database_restart_mid_run_loses_nothing() {
    let pg = cluster();
    let url = pg.url();
    let _servers = start_fleet(3, "default", &url, &[]);
    wait_for_live_nodes(&url, 3);
    let mut scheduler = SchedulerProcess::start(&url, &["--interval", "200ms"], &[]);
    assert!(
        wait_until(Duration::from_secs(60), || provides(&measurements(&url)).len()
            >= 2),
        "no rounds: {}",
        scheduler.log()
    );
    pg.pause().unwrap();
    let outage_start = chrono::Utc::now();
    std::thread::sleep(Duration::from_secs(10));
    let outage_end = chrono::Utc::now();
    pg.resume().unwrap();
    assert!(scheduler.running(), "the scheduler exited: {}", scheduler.log());
    let stored_during_outage = |rows: &[StoredMeasurement]| {
        rows.iter()
            .filter(|r| r.started_at > outage_start && r.started_at < outage_end)
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(60), || stored_during_outage(&measurements(
            &url
        )) > 0),
        "rows measured during the outage never arrived: {}",
        scheduler.log()
    );
    let (status, summary) = scheduler.terminate(Duration::from_secs(90));
    assert!(status.success(), "{summary}");
    assert_nothing_lost(&summary);
    assert!(
        summary_figure(&summary, "failed writes") > 0,
        "the outage went unnoticed: {summary}"
    );
    let rows = measurements(&url);
    assert_eq!(rows.len() as u64, summary_figure(&summary, "stored"));
    let counts = actix::System::new().block_on(common::postgres_counts(&url));
    assert_eq!(
        counts.distinct_measurements,
        rows.len() as i64,
        "a row was stored twice"
    );
}

/// The scheduler's id, from its summary line (`parsec scheduler 3: …`).
fn scheduler_id(summary: &str) -> i32 {
    summary
        .split("parsec scheduler ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no scheduler id in {summary:?}"))
}

/// One scheduler per fleet, side by side, each measuring only its own servers; then one
/// scheduler whose rounds publish with fleet `a` and look up with fleet `b`.
#[test]
fn schedulers_of_two_fleets_side_by_side_and_cross_fleet_rounds() {
    let pg = cluster();
    let url = pg.url();
    // Kept for a failure to show how each lookup went.
    let debug = [("RUST_LOG", "info,parsec_actors::dht=debug,libp2p_kad=debug")];
    let fleet_a = start_fleet(2, "a", &url, &debug);
    let fleet_b = start_joining(2, "b", &url, &debug, Some(&fleet_a[0].tcp_multiaddr));
    let server_logs = || -> String {
        fleet_a
            .iter()
            .chain(&fleet_b)
            .map(|s| format!("--- server {} ---\n{}", s.http, s.log()))
            .collect()
    };
    wait_for_live_nodes(&url, 4);
    let fleet_of = |id: i32| nodes(&url).into_iter().find(|n| n.id == id).unwrap().fleet;

    let run = |args: &[&str]| {
        SchedulerProcess::start(&url, &[args, &["--interval", "0", "--rounds", "4"]].concat(), &[])
    };
    let (scheduler_a, scheduler_b) = (run(&["--fleets", "a"]), run(&["--fleets", "b"]));
    let (status_a, summary_a) = scheduler_a.wait(Duration::from_secs(90));
    let (status_b, summary_b) = scheduler_b.wait(Duration::from_secs(90));
    assert!(
        status_a.success() && status_b.success(),
        "{summary_a}\n{summary_b}"
    );
    let rows = measurements(&url);
    for (summary, fleet) in [(&summary_a, "a"), (&summary_b, "b")] {
        assert_eq!(summary_figure(summary, "rounds run"), 4, "{summary}");
        let id = scheduler_id(summary);
        let own: Vec<&StoredMeasurement> = rows.iter().filter(|r| r.scheduler_id == id).collect();
        assert_eq!(own.len(), 8, "4 provides and 4 retrievals: {own:?}");
        assert!(own.iter().all(|r| fleet_of(r.node_id) == fleet), "{own:?}");
        assert!(
            own.iter()
                .filter(|r| r.operation == "provide")
                .all(|r| r.error.is_none()),
            "{own:?}\n{}",
            server_logs()
        );
        let misses: Vec<&StoredMeasurement> = own.iter().copied().filter(|r| r.error.is_some()).collect();
        assert_at_most_one_miss(&misses, &server_logs);
    }

    let (status, summary) = run(&[
        "--fleets",
        "a,b",
        "--provide-fleets",
        "a",
        "--retrieve-fleets",
        "b",
    ])
    .wait(Duration::from_secs(90));
    assert!(status.success(), "{summary}");
    let id = scheduler_id(&summary);
    let rows: Vec<StoredMeasurement> = measurements(&url)
        .into_iter()
        .filter(|r| r.scheduler_id == id)
        .collect();
    let cross_provides = provides(&rows);
    assert_eq!(cross_provides.len(), 4);
    // Every round's record is found by b.
    let mut misses = Vec::new();
    for provide in cross_provides {
        assert_eq!(fleet_of(provide.node_id), "a");
        let retrievals = retrievals_of(&rows, provide);
        assert_eq!(retrievals.len(), 2, "both b servers look up what a published");
        assert!(
            retrievals.iter().all(|r| fleet_of(r.node_id) == "b"),
            "{retrievals:?}"
        );
        assert!(
            retrievals.iter().any(|r| r.error.is_none()),
            "no b server found a's record: {retrievals:?}\n{}",
            server_logs()
        );
        misses.extend(retrievals.into_iter().filter(|r| r.error.is_some()));
    }
    assert_at_most_one_miss(&misses, &server_logs);
}

/// A lookup right after a provide may miss in a four-server network (seen once in CI: one "not
/// found" of 8 retrievals); one miss is allowed, and any more (or another error) shows the
/// servers' logs.
fn assert_at_most_one_miss(misses: &[&StoredMeasurement], server_logs: &dyn Fn() -> String) {
    assert!(
        misses.len() <= 1
            && misses
                .iter()
                .all(|r| r.error.as_deref() == Some(parsec_actors::NOT_FOUND)),
        "retrievals missed: {misses:?}\n{}",
        server_logs()
    );
}

/// One server process per DHT client (`--strategy default|classic`, parsec's `--optprov` and
/// `--fullrt` as env vars), in one network; a scheduler measures the four fleets in rounds where
/// each provides in turn and the other three retrieve. fullrt is ready only after its crawl.
#[test]
fn server_processes_of_every_strategy_measure_each_other() {
    let pg = cluster();
    let url = pg.url();
    let server_mode = ("PARSEC_SERVER_DHT_SERVER_MODE", "true");
    // Kept for a failure to show how each lookup went.
    let debug = ("RUST_LOG", "info,parsec_actors::dht=debug,libp2p_kad=debug");
    let first = start_fleet(1, "default", &url, &[server_mode, debug]);
    let join = Some(first[0].tcp_multiaddr.as_str());
    let classic = start_joining(
        1,
        "classic",
        &url,
        &[server_mode, debug, ("PARSEC_SERVER_DHT_STRATEGY", "classic")],
        join,
    );
    let optprov = start_joining(
        1,
        "optprov",
        &url,
        &[server_mode, debug, ("PARSEC_SERVER_DHT_OPTPROV", "true")],
        join,
    );
    // fullrt crawls once when it starts (then hourly): the others must have joined by then for
    // its crawl to find them all.
    wait_for_live_nodes(&url, 3);
    let fullrt = start_joining(
        1,
        "fullrt",
        &url,
        &[server_mode, debug, ("PARSEC_SERVER_DHT_FULLRT", "true")],
        join,
    );
    let server_logs = || -> String {
        [&first, &classic, &optprov, &fullrt]
            .into_iter()
            .flatten()
            .map(|s| format!("--- server {} ---\n{}", s.http, s.log()))
            .collect()
    };
    wait_for_live_nodes(&url, 4);

    let mut scheduler = SchedulerProcess::start(
        &url,
        &[
            "--fleets",
            "default,classic,optprov,fullrt",
            "--interval",
            "0",
            "--rounds",
            "4",
        ],
        &[],
    );
    wait_until(Duration::from_secs(120), || !scheduler.running());
    let log = scheduler.log();
    let (status, summary) = scheduler.wait(Duration::from_secs(1));
    assert!(status.success(), "{summary}");
    assert_nothing_lost(&summary);
    let fleet_of = |id: i32| nodes(&url).into_iter().find(|n| n.id == id).unwrap().fleet;
    let rows = measurements(&url);
    let provides = provides(&rows);
    let providing: BTreeSet<String> = provides.iter().map(|r| fleet_of(r.node_id)).collect();
    assert_eq!(
        providing.len(),
        4,
        "every fleet provided once: {providing:?}\n{log}"
    );
    for provide in provides {
        assert_eq!(provide.error, None, "{provide:?}");
        let retrievals = retrievals_of(&rows, provide);
        assert_eq!(retrievals.len(), 3, "{retrievals:?}\n{log}");
        for retrieval in retrievals {
            assert_eq!(
                retrieval.error,
                None,
                "{} found {}'s record: {retrieval:?}\n{}",
                fleet_of(retrieval.node_id),
                fleet_of(provide.node_id),
                server_logs()
            );
        }
    }
    // fullrt reports its crawl: the three other servers, in some time (labelled with its fleet
    // by the server, as every series of a server is).
    let metrics = scrape(&fullrt[0].metrics);
    assert!(
        metrics.contains("parsec_fullrt_crawl_peers{fleet=\"fullrt\"} 3\n"),
        "{metrics}"
    );
    let seconds = metrics
        .lines()
        .find_map(|l| l.strip_prefix("parsec_fullrt_crawl_seconds{fleet=\"fullrt\"} "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(seconds.is_some_and(|s| s > 0.0), "{metrics}");
}

/// The Prometheus text a process serves at `address`.
fn scrape(address: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}
