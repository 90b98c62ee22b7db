//! The stores against a real PostgreSQL: every test starts its own throwaway cluster from the
//! system's binaries (`apt-get install -y postgresql`) and fails, naming the package, without
//! them.

mod common;

use std::{
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types::Integer};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use parsec::{
    db::{
        postgres::{run_migrations, Direction, PgStore},
        schema::nodes_ecs,
        DatabaseTarget, Store,
    },
    testing::TempPostgres,
};
use parsec_actors::{
    recorder::{drain, GetStats},
    testing::{register_sample, sample_measurement, sample_registration, ReadinessStub},
    GoOffline, HeartbeatActor, Measurement, MeasurementRecorder, NodeId, NodeRegistration, Operation,
    RecordMeasurement, Registry,
};

/// The embedded Postgres migrations: parsec's schema, our columns, `record_peers`, golang-migrate's
/// version, the pubsub tables, `connections`, the six indexes, the reprovide tables.
const POSTGRES_MIGRATIONS: usize = 13;

fn cluster() -> TempPostgres {
    TempPostgres::start().unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL: {e}"))
}

async fn connect(url: &str) -> AsyncPgConnection {
    AsyncPgConnection::establish(url).await.unwrap()
}

/// The database at `url` as parsec's Go services leave it: their migrations applied, a scheduler
/// (id 1) and a server (node 1) registered. Returns a connection to it.
async fn parsec_created_database(url: &str) -> AsyncPgConnection {
    let mut conn = connect(url).await;
    conn.batch_execute(include_str!("fixtures/parsec-postgres-migrations.sql"))
        .await
        .unwrap();
    conn.batch_execute(
        "INSERT INTO schedulers_ecs (fleets, dependencies, created_at) VALUES ('{default}', '{}', now());
         INSERT INTO nodes_ecs (cpu, memory, peer_id, region, cmd, fleet, dependencies, ip_address,
                                server_port, peer_port, last_heartbeat, created_at)
             VALUES (2, 4096, '12D3KooWgo', 'us-east-1', 'parsec server', 'default', '{}', '10.0.0.1',
                     7070, 4001, now(), now());",
    )
    .await
    .unwrap();
    conn
}

#[actix::test]
async fn migrations_run_up_down_and_up_again() {
    let pg = cluster();
    let up = run_migrations(&pg.url(), Direction::Up).await.unwrap();
    assert_eq!(up.len(), POSTGRES_MIGRATIONS, "{up:?}");
    assert_eq!(run_migrations(&pg.url(), Direction::Up).await.unwrap().len(), 0);
    let down = run_migrations(&pg.url(), Direction::Down).await.unwrap();
    assert_eq!(down.len(), POSTGRES_MIGRATIONS, "{down:?}");
    let tables: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '%_ecs'",
    )
    .get_result(&mut connect(&pg.url()).await)
    .await
    .unwrap();
    assert_eq!(tables, 0, "down left tables behind");
    assert_eq!(
        run_migrations(&pg.url(), Direction::Up).await.unwrap().len(),
        POSTGRES_MIGRATIONS
    );
    assert_eq!(common::postgres_counts(&pg.url()).await.nodes, 0);
}

#[actix::test]
async fn processes_starting_at_once_migrate_once() {
    let pg = cluster();
    let url = pg.url();
    let starts = (0..4).map(|_| PgStore::connect(&url, true));
    for result in futures::future::join_all(starts).await {
        result.unwrap();
    }
    let applied: i64 =
        diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT count(*) FROM __diesel_schema_migrations")
            .get_result(&mut connect(&url).await)
            .await
            .unwrap();
    assert_eq!(applied, POSTGRES_MIGRATIONS as i64);
}

/// `--no-migrate` opens only a database with nothing pending, and says how to fix one that is
/// not; `parsec migrate`'s status lists exactly what is pending, and applying it makes the
/// database one `--no-migrate` accepts.
#[actix::test]
async fn without_migrating_only_a_current_database_opens() {
    use parsec::db::{migrations, SchemaPolicy};
    let pg = cluster();
    let target = DatabaseTarget::Postgres { url: pg.url() };
    let fresh = migrations::status(&target).await.unwrap();
    assert!(!fresh.initialised);
    assert_eq!(
        (fresh.applied.len(), fresh.pending.len()),
        (0, POSTGRES_MIGRATIONS)
    );
    let refused = Store::open_with(&target, SchemaPolicy::Existing)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("parsec migrate"), "{refused}");
    // The refusal and the status wrote nothing.
    assert!(!migrations::status(&target).await.unwrap().initialised);

    // One migration behind (the newest reverted by its own down.sql): named in the refusal.
    run_migrations(&pg.url(), Direction::Up).await.unwrap();
    let mut newest: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    newest.sort();
    let newest = newest.pop().unwrap();
    let mut conn = connect(&pg.url()).await;
    conn.batch_execute(&std::fs::read_to_string(newest.join("down.sql")).unwrap())
        .await
        .unwrap();
    diesel::sql_query("DELETE FROM __diesel_schema_migrations WHERE version = (SELECT max(version) FROM __diesel_schema_migrations)")
        .execute(&mut conn)
        .await
        .unwrap();
    let behind = migrations::status(&target).await.unwrap();
    assert_eq!(behind.pending.len(), 1, "{behind:?}");
    let refused = Store::open_with(&target, SchemaPolicy::Existing)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains(&behind.pending[0]), "{refused}");

    assert_eq!(migrations::apply(&target).await.unwrap().len(), 1);
    let current = migrations::status(&target).await.unwrap();
    assert_eq!(
        (current.applied.len(), current.pending.len()),
        (POSTGRES_MIGRATIONS, 0)
    );
    Store::open_with(&target, SchemaPolicy::Existing).await.unwrap();
}

/// One scheduler per fleet on Postgres: the second is refused and told which connection holds
/// the fleet; a lock whose connection the database ended is taken again by its owner.
#[actix::test]
async fn a_fleet_lock_is_held_once_and_survives_a_lost_connection() {
    use parsec::db::fleet_lock::{FleetLock, LockRefused};
    let pg = cluster();
    let target = DatabaseTarget::Postgres { url: pg.url() };
    let fleets = vec!["default".to_owned(), "optprov".to_owned()];
    let mut first = FleetLock::try_acquire(&target, &fleets).await.unwrap();
    let refused = FleetLock::try_acquire(&target, &["optprov".to_owned()])
        .await
        .unwrap_err();
    match &refused {
        LockRefused::Held { fleet, holder } => {
            assert_eq!(fleet, "optprov");
            assert!(holder.starts_with("connection "), "{holder}");
        }
        other => panic!("{other}"),
    }
    // Another fleet is free.
    FleetLock::try_acquire(&target, &["fullrt".to_owned()])
        .await
        .unwrap();

    // The database ends the lock's connection (a restart, a failover): the owner takes it again.
    diesel::sql_query(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted",
    )
    .execute(&mut connect(&pg.url()).await)
    .await
    .unwrap();
    first.ensure_held().await.unwrap();
    assert!(FleetLock::try_acquire(&target, &["default".to_owned()])
        .await
        .is_err());
    drop(first);
    // The session ends with the connection; give the server a moment to see it closed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while FleetLock::try_acquire(&target, &["default".to_owned()])
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the lock outlived its owner");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Upgrading a parsec database of a million rows while a writer keeps inserting into it (as
/// parsec's Go scheduler does, one statement after another on its own connection): the indexes
/// on the big tables are built concurrently, outside any transaction, and the catalog changes
/// give up a lock they wait 100 ms for and try again, so no insert waits a second, and every
/// index comes out valid.
#[actix::test]
async fn migrating_a_million_row_database_never_blocks_a_writer_for_a_second() {
    let pg = cluster();
    let url = pg.url();
    let mut conn = parsec_created_database(&url).await;
    conn.batch_execute(
        "-- Loaded as pg_restore does, without per-row foreign key checks (all rows name node 1).
         SET session_replication_role = replica;
         INSERT INTO retrievals_ecs (scheduler_id, node_id, rt_size, duration, cid, created_at)
             SELECT 1, 1, 200, random(), 'Qm' || g, now() - g * interval '1 second'
             FROM generate_series(1, 800000) g;
         INSERT INTO provides_ecs (scheduler_id, node_id, rt_size, duration, cid, created_at, step)
             SELECT 1, 1, 200, random(), 'Qm' || g, now() - g * interval '1 second', 'provide'
             FROM generate_series(1, 200000) g;
         SET session_replication_role = DEFAULT;",
    )
    .await
    .unwrap();
    conn.batch_execute("VACUUM ANALYZE retrievals_ecs, provides_ecs")
        .await
        .unwrap();

    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = actix::spawn({
        let (url, writing) = (url.clone(), writing.clone());
        async move {
            let mut conn = connect(&url).await;
            // A lock wait of 300 ms fails the insert: the migrations' locks themselves, apart
            // from the machine's I/O. (The transactional index builds these migrations replaced
            // blocked inserts 0.41 s over these rows, and minutes over years of rows.)
            conn.batch_execute("SET lock_timeout = '300ms'").await.unwrap();
            let (mut worst, mut inserts) = (Duration::ZERO, 0u32);
            while std::sync::atomic::AtomicBool::load(&writing, std::sync::atomic::Ordering::Relaxed) {
                // One statement at a time, each its own transaction, as parsec's Go writers do.
                for insert in [
                    "INSERT INTO retrievals_ecs (scheduler_id, node_id, rt_size, duration, cid, created_at) \
                     VALUES (1, 1, 200, 0.5, 'QmLive', now())",
                    "INSERT INTO provides_ecs (scheduler_id, node_id, rt_size, duration, cid, created_at, step) \
                     VALUES (1, 1, 200, 1.5, 'QmLive', now(), 'provide')",
                ] {
                    let started = Instant::now();
                    if let Err(e) = conn.batch_execute(insert).await {
                        panic!("an insert waited 300 ms for the migrations' locks: {e}");
                    }
                    worst = worst.max(started.elapsed());
                }
                inserts += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (worst, inserts)
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let migrating = Instant::now();
    run_migrations(&url, Direction::Up).await.unwrap();
    let took = migrating.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    let (worst, inserts) = writer.await.unwrap();
    eprintln!("migrations took {took:?}; {inserts} inserts meanwhile, the slowest {worst:?}");
    assert!(inserts > 20, "the writer hardly ran: {inserts}");
    assert!(
        worst < Duration::from_secs(1),
        "an insert waited {worst:?} (migrations took {took:?})"
    );

    let target = DatabaseTarget::Postgres { url: url.clone() };
    assert_eq!(
        parsec::db::migrations::invalid_indexes(&target).await.unwrap(),
        Vec::<String>::new()
    );
    let counts = common::postgres_counts(&url).await;
    assert_eq!(counts.retrievals as u32, 800_000 + inserts);
}

/// A database we create can be shared with parsec's Go services: golang-migrate finds version 6
/// (parsec's last migration) not dirty, so it applies nothing, and everything parsec's 000001..
/// 000006 leave (the reference schema, applied to a second database here) is there.
#[actix::test]
async fn a_database_we_create_is_one_parsecs_go_services_accept() {
    let pg = cluster();
    Store::open(&DatabaseTarget::Postgres { url: pg.url() })
        .await
        .unwrap();
    let mut ours = connect(&pg.url()).await;
    #[derive(diesel::QueryableByName, PartialEq, Debug)]
    struct Version {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        version: i64,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        dirty: bool,
    }
    let versions: Vec<Version> = diesel::sql_query("SELECT version, dirty FROM schema_migrations")
        .load(&mut ours)
        .await
        .unwrap();
    assert_eq!(
        versions,
        [Version {
            version: 6,
            dirty: false
        }]
    );

    ours.batch_execute("CREATE DATABASE reference").await.unwrap();
    let reference_url = format!("{}/reference", pg.url().rsplit_once('/').unwrap().0);
    let mut reference = connect(&reference_url).await;
    reference
        .batch_execute(include_str!("fixtures/parsec-postgres-migrations.sql"))
        .await
        .unwrap();
    #[derive(diesel::QueryableByName, PartialEq, Eq, PartialOrd, Ord, Debug)]
    struct Column {
        #[diesel(sql_type = diesel::sql_types::Text)]
        table_name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        column_name: String,
    }
    let columns = "SELECT table_name::text, column_name::text FROM information_schema.columns \
                   WHERE table_schema = 'public' ORDER BY 1, 2";
    let theirs: Vec<Column> = diesel::sql_query(columns).load(&mut reference).await.unwrap();
    let ours: Vec<Column> = diesel::sql_query(columns).load(&mut ours).await.unwrap();
    assert!(
        theirs.len() > 20,
        "the reference schema did not apply: {theirs:?}"
    );
    let missing: Vec<&Column> = theirs.iter().filter(|c| !ours.contains(c)).collect();
    assert!(
        missing.is_empty(),
        "parsec's columns missing from ours: {missing:?}"
    );
}

/// A database that parsec's own Go migrations created, holding parsec rows, is adopted: the
/// rows stay, and ports above 32767 fit afterwards.
#[actix::test]
async fn migrations_adopt_a_database_parsec_created() {
    let pg = cluster();
    let mut conn = parsec_created_database(&pg.url()).await;
    conn.batch_execute(
        "INSERT INTO provides_ecs (scheduler_id, node_id, rt_size, duration, cid, created_at, step)
             VALUES (1, 1, 200, 1.5, 'QmGo', now(), 'provide');
         INSERT INTO retrievals_ecs (scheduler_id, node_id, rt_size, duration, cid, created_at)
             VALUES (1, 1, 200, 0.5, 'QmGo', now());",
    )
    .await
    .unwrap();

    let store = Store::open(&DatabaseTarget::Postgres { url: pg.url() })
        .await
        .unwrap();
    let counts = common::postgres_counts(&pg.url()).await;
    assert_eq!((counts.provides, counts.retrievals, counts.nodes), (1, 1, 1));
    let step: String = diesel::dsl::sql::<diesel::sql_types::Text>("SELECT step FROM retrievals_ecs")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(step, "retrieval", "parsec's retrieval rows get the default step");

    // A Go server keeps inserting rows without our columns.
    conn.batch_execute(
        "INSERT INTO retrievals_ecs (scheduler_id, node_id, rt_size, duration, cid, created_at)
             VALUES (1, 1, 200, 0.7, 'QmGo2', now());",
    )
    .await
    .unwrap();
    let node = store.register_node(sample_registration()).await.unwrap();
    let ports: (i32, i32) = nodes_ecs::table
        .find(node.0 as i32)
        .select((nodes_ecs::server_port, nodes_ecs::peer_port))
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(ports, (40_000, 50_000));
}

#[derive(Debug, QueryableByName)]
struct NodeTimes {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    last_heartbeat: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    offline_since: Option<DateTime<Utc>>,
}

async fn node_times(conn: &mut AsyncPgConnection, node: NodeId) -> NodeTimes {
    diesel::sql_query("SELECT last_heartbeat, offline_since FROM nodes_ecs WHERE id = $1")
        .bind::<Integer, _>(node.0 as i32)
        .get_result(conn)
        .await
        .unwrap()
}

#[actix::test]
async fn registration_heartbeat_and_offline_marking() {
    let pg = cluster();
    let store = Store::open(&DatabaseTarget::Postgres { url: pg.url() })
        .await
        .unwrap();
    let node = ReadinessStub {
        unready_checks: 1,
        ..ReadinessStub::default()
    }
    .start();
    let (heartbeat, id) = HeartbeatActor::register(
        Arc::new(store.clone()),
        sample_registration(),
        node.recipient(),
        Duration::from_millis(50),
    )
    .await
    .unwrap();
    let mut conn = connect(&pg.url()).await;

    // The row as parsec's scheduler reads it for discovery.
    type Row = (String, String, ipnet::IpNet, i32, i32, serde_json::Value);
    let row: Row = nodes_ecs::table
        .find(id.0 as i32)
        .select((
            nodes_ecs::fleet,
            nodes_ecs::peer_id,
            nodes_ecs::ip_address,
            nodes_ecs::server_port,
            nodes_ecs::peer_port,
            nodes_ecs::dependencies,
        ))
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(row.0, "default");
    assert_eq!(row.1, "12D3KooWsample");
    assert_eq!(row.2.addr().to_string(), "127.0.0.1");
    assert_eq!((row.3, row.4), (40_000, 50_000));
    assert_eq!(row.5["libp2p"], "0.57");

    let mut times = node_times(&mut conn, id).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while times.last_heartbeat.is_none() {
        assert!(Instant::now() < deadline, "no heartbeat once ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
        times = node_times(&mut conn, id).await;
    }

    // A scheduler marked the node offline; the node is ready, so its next heartbeat brings it
    // back.
    conn.batch_execute(&format!(
        "UPDATE nodes_ecs SET offline_since = '2020-01-01T00:00:00Z' WHERE id = {}",
        id.0
    ))
    .await
    .unwrap();
    let before = times.last_heartbeat.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let times = node_times(&mut conn, id).await;
    assert!(times.last_heartbeat.unwrap() > before, "heartbeat not refreshed");
    assert_eq!(times.offline_since, None, "a ready node stayed offline");

    heartbeat.send(GoOffline).await.unwrap().unwrap();
    let times = node_times(&mut conn, id).await;
    assert!(
        times.offline_since.unwrap() > before,
        "graceful shutdown sets offline_since"
    );
}

/// Postgres stops for 12 s in the middle of a run and comes back: every row measured before,
/// during and after the outage is stored exactly once.
#[test]
fn recorder_loses_nothing_through_a_database_outage() {
    let pg = Arc::new(cluster());
    actix::System::new().block_on(async {
        let store = Store::open(&DatabaseTarget::Postgres { url: pg.url() })
            .await
            .unwrap();
        let (node, scheduler) = register_sample(&store).await.unwrap();
        let recorder = MeasurementRecorder::new(store.measurement_sink(scheduler))
            .with_flush_interval(Duration::from_millis(100))
            .start();

        let outage = {
            let pg = pg.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(2));
                pg.pause().unwrap();
                std::thread::sleep(Duration::from_secs(12));
                pg.resume().unwrap();
            })
        };
        // 20 rows every 100 ms for 18 s, across both tables.
        let mut sent: Vec<Measurement> = Vec::new();
        for tick in 0..180u32 {
            for i in 0..20u32 {
                let operation = if i == 0 {
                    Operation::Provide
                } else {
                    Operation::Retrieval
                };
                let row = Measurement {
                    node,
                    probe: tick * 20 + i,
                    ..sample_measurement(operation, Duration::from_millis(u64::from(i)))
                };
                sent.push(row.clone());
                recorder.do_send(RecordMeasurement(row));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        outage.join().unwrap();
        drain(&recorder, Duration::from_secs(60)).await.unwrap();
        let stats = recorder.send(GetStats).await.unwrap();
        assert!(stats.failed_writes > 0, "the outage was not noticed: {stats:?}");
        assert_eq!(stats.dropped, 0);

        let counts = common::postgres_counts(&pg.url()).await;
        assert_eq!(counts.provides, 180);
        assert_eq!(counts.retrievals, 180 * 19);
        assert_eq!(counts.distinct_measurements, sent.len() as i64, "duplicated rows");
    });
}

/// The main job against Postgres: servers register, heartbeat and go offline; every
/// measurement lands with its round id.
#[test]
fn testnet_writes_to_postgres() {
    let pg = cluster();
    let output = common::testnet_command(2, "memory", &pg.url()).output().unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    assert!(
        stdout.contains("psql \"postgres://postgres@127.0.0.1"),
        "{stdout}"
    );
    let counts = System::new().block_on(common::postgres_counts(&pg.url()));
    assert_eq!(
        counts,
        common::StoredCounts {
            provides: 2,
            retrievals: 4,
            distinct_measurements: 6,
            rounds: 2,
            schedulers: 1,
            nodes: 3,
            nodes_with_heartbeat: 3,
            nodes_offline: 3,
        }
    );
}

#[test]
fn a_clear_error_when_postgres_is_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = Command::new(env!("CARGO_BIN_EXE_parsec"))
        .args(["testnet", "--no-progress", "--database-url"])
        .arg(format!("postgres://parsec@127.0.0.1:{port}/parsec"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("opening the database postgres://parsec@127.0.0.1"),
        "{stderr}"
    );
}

#[derive(Debug, QueryableByName)]
struct StoredRetrieval {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    measurement_id: Option<uuid::Uuid>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    round_id: Option<uuid::Uuid>,
    #[diesel(sql_type = Integer)]
    scheduler_id: i32,
    #[diesel(sql_type = Integer)]
    node_id: i32,
    #[diesel(sql_type = Integer)]
    rt_size: i32,
    #[diesel(sql_type = diesel::sql_types::Double)]
    duration: f64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    cid: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    error: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    started_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    step: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<Integer>)]
    probe: Option<i32>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    trace_id: Option<String>,
}

/// Every column of a stored row holds what was measured (the insert binds columns by position).
#[actix::test]
async fn a_measurement_is_stored_column_for_column() {
    let pg = cluster();
    let store = Store::open(&DatabaseTarget::Postgres { url: pg.url() })
        .await
        .unwrap();
    let (node, scheduler) = register_sample(&store).await.unwrap();
    let started_at: DateTime<Utc> = "2026-11-25T10:00:00.123456Z".parse().unwrap();
    let measurement = Measurement {
        node,
        probe: 3,
        started_at,
        error: Some(parsec_actors::DEADLINE_EXCEEDED.into()),
        routing_table_size: 57,
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        ..sample_measurement(Operation::Retrieval, Duration::from_micros(1_500_250))
    };
    parsec_actors::MeasurementSink::write(&store.measurement_sink(scheduler), vec![measurement.clone()])
        .await
        .unwrap();
    let stored: StoredRetrieval = diesel::sql_query("SELECT * FROM retrievals_ecs")
        .get_result(&mut connect(&pg.url()).await)
        .await
        .unwrap();
    assert_eq!(stored.measurement_id, Some(measurement.id));
    assert_eq!(stored.round_id, Some(measurement.round.0));
    assert_eq!(
        (stored.scheduler_id, stored.node_id),
        (scheduler.0 as i32, node.0 as i32)
    );
    assert_eq!(stored.rt_size, 57);
    assert_eq!(stored.duration, Duration::from_micros(1_500_250).as_secs_f64());
    assert_eq!(stored.cid, measurement.cid);
    assert_eq!(stored.error.as_deref(), Some("context deadline exceeded"));
    assert_eq!(stored.started_at, Some(started_at));
    assert_eq!(
        stored.created_at,
        started_at + chrono::Duration::microseconds(1_500_250)
    );
    assert_eq!(stored.step, "retrieval");
    assert_eq!(stored.probe, Some(3));
    assert_eq!(
        stored.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
}

/// Discovery selects what a scheduler may measure, identically on both backends: the asked
/// fleets, not offline, heartbeat newer than the cut-off, in id order.
async fn discovery_filters(store: &Store) {
    let register = |fleet: &str, port: u16| {
        let mut registration = sample_registration();
        registration.fleet = fleet.to_owned();
        registration.server_port = port;
        // Six servers, six identities (a peer that registers again is a restart).
        registration.peer_id = format!("12D3KooWsample{port}");
        store.register_node(registration)
    };
    let now = Utc::now();
    let cut_off = now - chrono::Duration::minutes(2);
    let fresh = register("a", 40_001).await.unwrap();
    let stale = register("a", 40_002).await.unwrap();
    let never = register("a", 40_003).await.unwrap();
    let offline = register("a", 40_004).await.unwrap();
    let other_fleet = register("c", 40_005).await.unwrap();
    let second_fleet = register("b", 40_006).await.unwrap();
    for node in [fresh, offline, other_fleet, second_fleet] {
        store.heartbeat(node, now).await.unwrap();
    }
    store
        .heartbeat(stale, now - chrono::Duration::minutes(5))
        .await
        .unwrap();
    store.mark_offline(offline, now).await.unwrap();
    let _ = never;

    let found = Registry::discover_nodes(
        store,
        parsec_actors::NodeQuery {
            fleets: vec!["a".into(), "b".into()],
            heartbeat_since: cut_off,
        },
    )
    .await
    .unwrap();
    let ids: Vec<NodeId> = found.iter().map(|n| n.id).collect();
    assert_eq!(ids, vec![fresh, second_fleet]);
    assert_eq!(found[0].fleet, "a");
    assert_eq!(found[0].server_port, 40_001, "ports above 32767 survive");
    assert_eq!(found[0].ip_address.to_string(), "127.0.0.1");
    assert_eq!(found[0].peer_id, "12D3KooWsample40001");
    assert_eq!(found[1].fleet, "b");
}

#[actix::test]
async fn discovery_on_postgres() {
    let pg = cluster();
    let store = Store::open(&DatabaseTarget::Postgres { url: pg.url() })
        .await
        .unwrap();
    discovery_filters(&store).await;
}

#[actix::test]
async fn discovery_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&DatabaseTarget::Sqlite {
        path: dir.path().join("discovery.sqlite"),
    })
    .await
    .unwrap();
    discovery_filters(&store).await;
}

/// A certificate authority and a server certificate for `db.internal` (not for 127.0.0.1, where
/// the test cluster listens), made with openssl in `dir`; returns the paths of the CA, the
/// server's chain and its key.
fn make_certificates(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, String, String) {
    let openssl = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let ca = format!("{name}-ca");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        &format!("/CN={name} test CA"),
        "-keyout",
        &format!("{ca}.key"),
        "-out",
        &format!("{ca}.crt"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=db.internal",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:db.internal\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        &format!("{ca}.crt"),
        "-CAkey",
        &format!("{ca}.key"),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
    (
        dir.join(format!("{ca}.crt")),
        std::fs::read_to_string(dir.join("server.crt")).unwrap(),
        std::fs::read_to_string(dir.join("server.key")).unwrap(),
    )
}

/// TLS to Postgres, as RDS enforces it: a cluster that refuses plain connections, with a
/// certificate made here. `require` encrypts, `verify-ca` checks the chain, `verify-full` the
/// name too (the certificate names db.internal, the test connects to 127.0.0.1), and a chain
/// from another CA is refused.
#[actix::test]
async fn tls_connections_as_sslmode_asks() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, chain, key) = make_certificates(dir.path(), "trusted");
    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let (other_ca, _, _) = make_certificates(&other_dir, "other");
    let pg = TempPostgres::start_tls_only(&chain, &key).unwrap_or_else(|e| panic!("{e}"));
    let url = |query: &str| format!("{}?{query}", pg.url());
    let open = |url: String| async move { Store::open(&DatabaseTarget::Postgres { url }).await };

    let plain = open(url("sslmode=disable")).await;
    assert!(plain.is_err(), "the cluster accepted a plain connection");

    let store = open(url("sslmode=require")).await.unwrap();
    store.register_node(sample_registration()).await.unwrap();

    let ca = ca.to_str().unwrap();
    open(url(&format!("sslmode=verify-ca&sslrootcert={ca}")))
        .await
        .unwrap();
    let wrong_name = open(url(&format!("sslmode=verify-full&sslrootcert={ca}"))).await;
    let error = wrong_name
        .expect_err("verify-full accepted a certificate for another name")
        .to_string();
    assert!(error.contains("certificate"), "{error}");
    let other = open(url(&format!(
        "sslmode=verify-ca&sslrootcert={}",
        other_ca.display()
    )))
    .await;
    assert!(other.is_err(), "verify-ca accepted a chain from an untrusted CA");
}

/// A stored pubsub row, read back the same way from either backend.
#[derive(QueryableByName, Debug, PartialEq)]
struct StoredPubsub {
    #[diesel(sql_type = diesel::sql_types::Text)]
    round_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    measurement_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    topic: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    message_id: String,
    #[diesel(sql_type = diesel::sql_types::Double)]
    duration: f64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    error: Option<String>,
    #[diesel(sql_type = Integer)]
    counted: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    first_from: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    clock_offset: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    implementation: String,
}

const STORED_PUBSUB: &str = "SELECT CAST(round_id AS TEXT) AS round_id, CAST(measurement_id AS TEXT) AS measurement_id, \
     topic, message_id, duration, error, message_bytes AS counted, NULL AS first_from, NULL AS clock_offset, \
     'publisher' AS implementation FROM pubsub_publishes_ecs \
     UNION ALL SELECT CAST(round_id AS TEXT), CAST(measurement_id AS TEXT), topic, message_id, duration, error, \
     copies, first_from, clock_offset, implementation FROM pubsub_deliveries_ecs ORDER BY counted DESC";

/// A publish (1,024 bytes) and two deliveries, one lost, in one batch with a retrieval.
fn pubsub_batch(node: NodeId) -> Vec<Measurement> {
    let round = parsec_actors::RoundId::new();
    let details = parsec_actors::PubsubDetails {
        topic: "blocks".into(),
        message_bytes: 1024,
        topic_peers: Some(9),
        mesh_peers: Some(6),
        copies: 0,
        first_from: None,
        clock_offset: None,
        clock_uncertainty: None,
        implementation: "rust-libp2p".into(),
    };
    let pubsub = |operation: Operation,
                  millis: u64,
                  details: parsec_actors::PubsubDetails,
                  error: Option<&str>| Measurement {
        node,
        round,
        cid: "3f1c0b62-7b1e-4c38-9a55-2f6f0d9d1a11".into(),
        error: error.map(str::to_owned),
        pubsub: Some(details),
        ..sample_measurement(operation, Duration::from_millis(millis))
    };
    vec![
        pubsub(Operation::Publish, 40, details.clone(), None),
        pubsub(
            Operation::Delivery,
            12,
            parsec_actors::PubsubDetails {
                copies: 3,
                first_from: Some("12D3KooWPublisher".into()),
                clock_offset: Some(-0.004),
                clock_uncertainty: Some(0.001),
                implementation: "js-libp2p".into(),
                ..details.clone()
            },
            None,
        ),
        pubsub(
            Operation::Delivery,
            10_000,
            details,
            Some(parsec_actors::NOT_DELIVERED),
        ),
        Measurement {
            node,
            ..sample_measurement(Operation::Retrieval, Duration::from_millis(5))
        },
    ]
}

fn expected_pubsub(batch: &[Measurement]) -> Vec<StoredPubsub> {
    let row = |m: &Measurement, counted: i32| {
        let details = m.pubsub.as_ref().unwrap();
        StoredPubsub {
            round_id: m.round.0.to_string(),
            measurement_id: m.id.to_string(),
            topic: details.topic.clone(),
            message_id: m.cid.clone(),
            duration: m.duration.as_secs_f64(),
            error: m.error.clone(),
            counted,
            first_from: (m.operation == Operation::Delivery)
                .then(|| details.first_from.clone())
                .flatten(),
            clock_offset: (m.operation == Operation::Delivery)
                .then_some(details.clock_offset)
                .flatten(),
            implementation: if m.operation == Operation::Publish {
                "publisher".into()
            } else {
                details.implementation.clone()
            },
        }
    };
    vec![row(&batch[0], 1024), row(&batch[1], 3), row(&batch[2], 0)]
}

/// Publishes and deliveries go to their own tables on both backends, column for column, beside a
/// retrieval of the same batch; a batch written twice (a retry) is stored once.
#[actix::test]
async fn pubsub_rows_are_stored_in_their_tables_on_both_backends() {
    let pg = cluster();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("pubsub.sqlite");
    for target in [
        DatabaseTarget::Postgres { url: pg.url() },
        DatabaseTarget::Sqlite { path: sqlite.clone() },
    ] {
        let store = Store::open(&target).await.unwrap();
        let (node, scheduler) = register_sample(&store).await.unwrap();
        let batch = pubsub_batch(node);
        for _ in 0..2 {
            parsec_actors::MeasurementSink::write(&store.measurement_sink(scheduler), batch.clone())
                .await
                .unwrap();
        }
        let (stored, retrievals) = match &target {
            DatabaseTarget::Postgres { url } => {
                let mut conn = connect(url).await;
                let stored: Vec<StoredPubsub> =
                    diesel::sql_query(STORED_PUBSUB).load(&mut conn).await.unwrap();
                let retrievals: Vec<Count> =
                    diesel::sql_query("SELECT count(*)::int4 AS n FROM retrievals_ecs")
                        .load(&mut conn)
                        .await
                        .unwrap();
                (stored, retrievals[0].n)
            }
            DatabaseTarget::Sqlite { path } => sqlite_rows::read(path),
        };
        assert_eq!(stored, expected_pubsub(&batch), "{target:?}");
        assert_eq!(retrievals, 1, "{target:?}");
    }
}

/// A reprovide round's row and its observations, as read back from outside the store.
#[derive(QueryableByName, Clone, Debug, PartialEq)]
struct StoredRound {
    #[diesel(sql_type = diesel::sql_types::Text)]
    strategy: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    cids: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    lookups: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    copies_stored: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    duration: f64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    error: Option<String>,
    #[diesel(sql_type = Integer)]
    walks: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    bytes_out: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    peak_memory: Option<i64>,
    #[diesel(sql_type = Integer)]
    found: i32,
    #[diesel(sql_type = Integer)]
    placed: i32,
}

const STORED_ROUND: &str = "SELECT r.strategy, r.cids, r.lookups, r.copies_stored, r.duration, r.error, \
     o.walks, o.bytes_out, o.peak_memory, o.found, o.placed \
     FROM reprovide_rounds_ecs r JOIN reprovide_observations_ecs o ON o.round_measurement_id = r.measurement_id";

/// A sweep's walk as read back.
#[derive(QueryableByName, Debug, PartialEq)]
struct StoredRegion {
    #[diesel(sql_type = Integer)]
    walk: i32,
    #[diesel(sql_type = diesel::sql_types::Text)]
    prefix: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    cids: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    copies_stored: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    duration: f64,
}

const STORED_REGIONS: &str =
    "SELECT walk, prefix, cids, copies_stored, duration FROM reprovide_regions_ecs ORDER BY walk";

/// A sweep round of three walks (prefixes `0`, `10`, `11`) that stored 20 copies of 300 CIDs.
fn sweep_round(node: NodeId) -> Measurement {
    use parsec_actors::{ReprovideDetails, ReprovideRound, ReprovideStrategy, WalkReport};
    let walk = |bits: &str, keys: u64, millis: u64| {
        let prefix: parsec_kad::region::Prefix = bits.parse().unwrap();
        WalkReport {
            prefix: Some(prefix),
            regions: 1,
            peers: 25,
            keys,
            lookups: 2,
            messages: 20 * keys + 30,
            failures: 0,
            copies_stored: 20 * keys,
            duration: Duration::from_millis(millis),
        }
    };
    let mut round = ReprovideRound {
        keys: 300,
        duration: Duration::from_millis(2500),
        ..ReprovideRound::default()
    };
    for walk in [walk("0", 150, 900), walk("10", 80, 1200), walk("11", 70, 1300)] {
        round.add_walk(walk);
    }
    let details = ReprovideDetails {
        strategy: ReprovideStrategy::Sweep,
        workers: 4,
        round,
        connections: Some(60),
        bytes_out: Some(1 << 20),
        cpu: Some(Duration::from_millis(300)),
        peak_memory: None,
        sampled: 10,
        found: 10,
        placements: 200,
        placed: 199,
    };
    Measurement::reprovide(
        parsec_actors::RoundId::new(),
        "sweep",
        node,
        Utc::now(),
        details.failure(),
        details,
    )
}

/// A reprovide round goes through the sink like any measurement: its round row, its observations
/// and a row per prefix walked, on both backends, once however often the batch is written.
#[actix::test]
async fn reprovide_rounds_are_stored_in_their_tables_on_both_backends() {
    let pg = cluster();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("reprovide.sqlite");
    let expected_round = StoredRound {
        strategy: "sweep".to_owned(),
        cids: 300,
        lookups: 6,
        copies_stored: 6000,
        duration: 2.5,
        error: None,
        walks: 3,
        bytes_out: Some(1 << 20),
        peak_memory: None,
        found: 10,
        placed: 199,
    };
    let expected_regions = [("0", 150, 0.9), ("10", 80, 1.2), ("11", 70, 1.3)]
        .iter()
        .enumerate()
        .map(|(walk, &(prefix, cids, duration))| StoredRegion {
            walk: walk as i32,
            prefix: prefix.to_owned(),
            cids,
            copies_stored: 20 * cids,
            duration,
        })
        .collect::<Vec<_>>();
    for target in [
        DatabaseTarget::Postgres { url: pg.url() },
        DatabaseTarget::Sqlite { path: sqlite.clone() },
    ] {
        let store = Store::open(&target).await.unwrap();
        let (node, scheduler) = register_sample(&store).await.unwrap();
        let batch = vec![sweep_round(node)];
        for _ in 0..2 {
            parsec_actors::MeasurementSink::write(&store.measurement_sink(scheduler), batch.clone())
                .await
                .unwrap();
        }
        let (rounds, regions): (Vec<StoredRound>, Vec<StoredRegion>) = match &target {
            DatabaseTarget::Postgres { url } => {
                let mut conn = connect(url).await;
                (
                    diesel::sql_query(STORED_ROUND).load(&mut conn).await.unwrap(),
                    diesel::sql_query(STORED_REGIONS).load(&mut conn).await.unwrap(),
                )
            }
            DatabaseTarget::Sqlite { path } => {
                let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
                (
                    diesel::RunQueryDsl::load(diesel::sql_query(STORED_ROUND), &mut conn).unwrap(),
                    diesel::RunQueryDsl::load(diesel::sql_query(STORED_REGIONS), &mut conn).unwrap(),
                )
            }
        };
        assert_eq!(rounds, std::slice::from_ref(&expected_round), "{target:?}");
        assert_eq!(regions, expected_regions, "{target:?}");
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = Integer)]
    n: i32,
}

mod sqlite_rows {
    use diesel::{Connection, RunQueryDsl, SqliteConnection};

    use super::{Count, StoredPubsub, STORED_PUBSUB};

    pub(super) fn read(path: &std::path::Path) -> (Vec<StoredPubsub>, i32) {
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        let stored = diesel::sql_query(STORED_PUBSUB).load(&mut conn).unwrap();
        let count: Vec<Count> =
            diesel::sql_query("SELECT CAST(count(*) AS INTEGER) AS n FROM retrievals_ecs")
                .load(&mut conn)
                .unwrap();
        (stored, count[0].n)
    }
}

/// Runs `sql` on the store at `target` (a test's view from outside the store).
async fn execute(target: &DatabaseTarget, sql: &str) {
    match target {
        DatabaseTarget::Postgres { url } => connect(url).await.batch_execute(sql).await.unwrap(),
        DatabaseTarget::Sqlite { path } => {
            use diesel::connection::SimpleConnection as _;
            let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
            conn.batch_execute(sql).unwrap();
        }
    }
}

/// The rows of `table`, counted from outside the store.
async fn count_rows(target: &DatabaseTarget, table: &str) -> i32 {
    match target {
        DatabaseTarget::Postgres { url } => {
            let sql = format!("SELECT count(*)::int4 AS n FROM {table}");
            let count: Count = diesel::sql_query(sql)
                .get_result(&mut connect(url).await)
                .await
                .unwrap();
            count.n
        }
        DatabaseTarget::Sqlite { path } => {
            let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
            let sql = format!("SELECT CAST(count(*) AS INTEGER) AS n FROM {table}");
            let count: Count = diesel::RunQueryDsl::get_result(diesel::sql_query(sql), &mut conn).unwrap();
            count.n
        }
    }
}

/// A time as SQL text the store at `target` compares with its own timestamps.
fn sql_time(target: &DatabaseTarget, at: DateTime<Utc>) -> String {
    let text = at.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f");
    match target {
        DatabaseTarget::Postgres { .. } => format!("'{text}+00'"),
        DatabaseTarget::Sqlite { .. } => format!("'{text}'"),
    }
}

/// The node row's (heartbeat is set, offline is set, address, server port), read from outside.
async fn node_state(target: &DatabaseTarget, node: NodeId) -> (bool, bool, String, i32) {
    #[derive(QueryableByName)]
    struct State {
        #[diesel(sql_type = Integer)]
        beat: i32,
        #[diesel(sql_type = Integer)]
        offline: i32,
        #[diesel(sql_type = diesel::sql_types::Text)]
        ip: String,
        #[diesel(sql_type = Integer)]
        port: i32,
    }
    let columns = "CAST(last_heartbeat IS NOT NULL AS INTEGER) AS beat, \
                   CAST(offline_since IS NOT NULL AS INTEGER) AS offline, server_port AS port";
    let state: State = match target {
        DatabaseTarget::Postgres { url } => {
            let sql = format!(
                "SELECT {columns}, host(ip_address) AS ip FROM nodes_ecs WHERE id = {}",
                node.0
            );
            diesel::sql_query(sql)
                .get_result(&mut connect(url).await)
                .await
                .unwrap()
        }
        DatabaseTarget::Sqlite { path } => {
            let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
            let sql = format!(
                "SELECT {columns}, ip_address AS ip FROM nodes_ecs WHERE id = {}",
                node.0
            );
            diesel::RunQueryDsl::get_result(diesel::sql_query(sql), &mut conn).unwrap()
        }
    };
    (state.beat == 1, state.offline == 1, state.ip, state.port)
}

/// A server restarted with the same identity and build takes over its row (new address, online,
/// no heartbeat until it beats), so restarts add no rows; one whose build changed gets a row of
/// its own, and the earlier row its crashed process left online is marked offline. Both stores.
#[actix::test]
async fn a_restarted_node_takes_over_its_row_or_retires_the_one_it_left() {
    let pg = cluster();
    let dir = tempfile::tempdir().unwrap();
    for target in [
        DatabaseTarget::Postgres { url: pg.url() },
        DatabaseTarget::Sqlite {
            path: dir.path().join("restarts.sqlite"),
        },
    ] {
        let store = Store::open(&target).await.unwrap();
        let first = store.register_node(sample_registration()).await.unwrap();
        store.heartbeat(first, Utc::now()).await.unwrap();
        let other = store
            .register_node(NodeRegistration {
                peer_id: "12D3KooWother".into(),
                ..sample_registration()
            })
            .await
            .unwrap();
        store.heartbeat(other, Utc::now()).await.unwrap();
        // The same identity in another fleet is another node, left alone.
        let elsewhere = store
            .register_node(NodeRegistration {
                fleet: "optprov".into(),
                ..sample_registration()
            })
            .await
            .unwrap();

        // The process crashed (no offline mark) and came back on another address.
        let restarted = store
            .register_node(NodeRegistration {
                ip_address: "10.0.0.7".parse().unwrap(),
                server_port: 40_100,
                ..sample_registration()
            })
            .await
            .unwrap();
        assert_eq!(restarted, first, "{target}: a restart took a new row");
        assert_eq!(
            node_state(&target, first).await,
            (false, false, "10.0.0.7".into(), 40_100),
            "{target}"
        );
        assert_eq!(count_rows(&target, "nodes_ecs").await, 3, "{target}");

        // It crashed again and came back upgraded: a row of its own, and the old one retired.
        let mut upgraded = sample_registration();
        upgraded.dependencies.insert("parsec".into(), "0.2.0".into());
        let upgraded = store.register_node(upgraded).await.unwrap();
        assert_ne!(upgraded, first, "{target}: another build shares a row");
        assert!(
            node_state(&target, first).await.1,
            "{target}: the old row stayed online"
        );
        assert!(!node_state(&target, upgraded).await.1, "{target}");
        assert_eq!(
            node_state(&target, other).await,
            (true, false, "127.0.0.1".into(), 40_000),
            "{target}: another peer's row changed"
        );
        assert!(
            !node_state(&target, elsewhere).await.1,
            "{target}: another fleet's row retired"
        );
    }
}

/// `Store::prune` deletes the measurements older than the cutoff, in batches, then the nodes and
/// schedulers left without newer ones; what is newer, or still measured, stays. A dry run counts
/// exactly what the run then deletes, and deletes nothing. Both stores.
#[actix::test]
async fn prune_deletes_old_rows_in_batches_and_keeps_the_rest() {
    use parsec::db::prune::{PruneRequest, PrunedTable};

    let pg = cluster();
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let old = now - chrono::Duration::days(200);
    for target in [
        DatabaseTarget::Postgres { url: pg.url() },
        DatabaseTarget::Sqlite {
            path: dir.path().join("prune.sqlite"),
        },
    ] {
        let store = Store::open(&target).await.unwrap();
        let node = |peer: &str| NodeRegistration {
            peer_id: format!("12D3KooW{peer}"),
            ..sample_registration()
        };
        let gone = store.register_node(node("gone")).await.unwrap();
        let live = store.register_node(node("live")).await.unwrap();
        let recently_offline = store.register_node(node("recent")).await.unwrap();
        let scheduler = |store: &Store| {
            store.register_scheduler(parsec_actors::SchedulerRegistration {
                fleets: vec!["default".into()],
                dependencies: Default::default(),
            })
        };
        let old_scheduler = scheduler(&store).await.unwrap();
        let current = scheduler(&store).await.unwrap();
        let at = |time| sql_time(&target, time);
        execute(
            &target,
            &format!(
                "UPDATE nodes_ecs SET created_at = {old}, last_heartbeat = {old}, offline_since = {old} WHERE id = {gone};
                 UPDATE nodes_ecs SET created_at = {old}, last_heartbeat = {now} WHERE id = {live};
                 UPDATE nodes_ecs SET created_at = {old}, offline_since = {recent} WHERE id = {recently_offline};
                 UPDATE schedulers_ecs SET created_at = {old};",
                old = at(old),
                now = at(now),
                recent = at(now - chrono::Duration::days(10)),
                gone = gone.0,
                live = live.0,
                recently_offline = recently_offline.0,
            ),
        )
        .await;

        let rows = |node: NodeId, operation: Operation, started_at: DateTime<Utc>, n: usize| {
            (0..n)
                .map(|_| Measurement {
                    node,
                    started_at,
                    ..sample_measurement(operation, Duration::from_millis(20))
                })
                .collect::<Vec<_>>()
        };
        let mut old_batch = rows(gone, Operation::Provide, old, 3);
        old_batch.extend(rows(gone, Operation::Retrieval, old, 2));
        old_batch.extend(
            pubsub_batch(gone)
                .into_iter()
                .map(|m| Measurement { started_at: old, ..m }),
        );
        let mut current_batch = rows(live, Operation::Provide, old, 1);
        current_batch.extend(rows(live, Operation::Provide, now, 2));
        current_batch.extend(rows(live, Operation::Retrieval, now, 1));
        for (scheduler, batch) in [(old_scheduler, old_batch), (current, current_batch)] {
            parsec_actors::MeasurementSink::write(&store.measurement_sink(scheduler), batch)
                .await
                .unwrap();
        }

        let tables = PrunedTable::ALL.map(PrunedTable::name);
        let mut before = Vec::new();
        for table in tables {
            before.push(count_rows(&target, table).await);
        }
        assert_eq!(before, [6, 4, 1, 2, 3, 2], "{target}: {tables:?}");
        let cutoff = now - chrono::Duration::days(90);
        let request = PruneRequest {
            cutoff,
            batch_rows: 2,
            dry_run: true,
        };
        let counted = store
            .prune(request, |_, _| panic!("a dry run deleted"))
            .await
            .unwrap();
        let mut after_dry_run = Vec::new();
        for table in tables {
            after_dry_run.push(count_rows(&target, table).await);
        }
        assert_eq!(after_dry_run, before, "{target}: a dry run deleted rows");

        let mut batches = Vec::new();
        let pruned = store
            .prune(
                PruneRequest {
                    dry_run: false,
                    ..request
                },
                |table, rows| batches.push((table, rows)),
            )
            .await
            .unwrap();
        let deleted: Vec<u64> = pruned.iter().map(|t| t.rows).collect();
        assert_eq!(deleted, [4, 3, 1, 2, 1, 1], "{target}: {tables:?}");
        assert_eq!(
            counted.iter().map(|t| t.rows).collect::<Vec<_>>(),
            deleted,
            "{target}: the dry run counted otherwise"
        );
        assert!(
            batches.iter().all(|&(_, rows)| rows <= 2),
            "{target}: {batches:?}"
        );
        assert_eq!(pruned[0].batches, 2, "{target}: 4 provides in batches of 2");
        let mut after = Vec::new();
        for table in tables {
            after.push(count_rows(&target, table).await);
        }
        assert_eq!(after, [2, 1, 0, 0, 2, 1], "{target}: {tables:?}");
        // The two that stay are the measured node and the one seen 10 days ago (reading a
        // missing row fails).
        assert!(node_state(&target, live).await.0, "{target}");
        assert!(node_state(&target, recently_offline).await.1, "{target}");
        // Nothing is left to prune.
        let again = store
            .prune(
                PruneRequest {
                    dry_run: false,
                    ..request
                },
                |_, _| {},
            )
            .await
            .unwrap();
        assert!(again.iter().all(|t| t.rows == 0), "{target}: {again:?}");
    }
}
