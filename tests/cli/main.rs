//! The `parsec` binary as users run it, one module per command: the testnet main job, the
//! simulator, the scheduler, `server dht` processes that join one DHT and serve each other's
//! content over the HTTP API, `health`, `networks`, parsec's Go command lines, and gossipsub.
//! The helpers several commands share are here.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

#[path = "../common/mod.rs"]
mod common;

mod fuzz;
mod gossipsub;
mod parsec_go;
mod scheduler;
mod server;
mod simulate;
mod testnet;

use parsec::testing::process::ServerProcess;

const PARSEC: &str = env!("CARGO_BIN_EXE_parsec");

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

/// Runs `parsec <command>` with each case's flags on a fresh SQLite path: each must fail with
/// its message and no panic, before the storage opens (the file is never created).
/// The whitespace-separated fields of the line of a printed table that has `columns` fields and
/// `strategy` in its second.
fn table_row(stdout: &str, strategy: &str, columns: usize) -> Vec<String> {
    stdout
        .lines()
        .map(|line| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|fields| fields.len() == columns && fields[1] == strategy)
        .unwrap_or_else(|| panic!("no {strategy} row: {stdout}"))
}

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

/// `parsec migrate --dry-run` lists what a database lacks without creating it; `parsec migrate`
/// applies it; a scheduler started with `--no-migrate` refuses a database with migrations
/// pending and names the command that fixes it, and runs against a migrated one.
#[test]
fn migrations_run_on_their_own_and_no_migrate_refuses_a_database_that_lacks_them() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("upgraded.sqlite");
    let url = format!("sqlite://{}", database.display());
    let parsec = |args: &[&str]| {
        let output = Command::new(PARSEC)
            .args(args)
            .args(["--database-url", &url])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    };
    let (ok, listed) = parsec(&["migrate", "--dry-run"]);
    assert!(
        ok && listed.contains("0 migration(s) applied") && listed.contains("pending: "),
        "{listed}"
    );
    assert!(listed.contains("dry run: nothing applied"), "{listed}");
    assert!(!database.exists(), "a dry run created the database");

    let (ok, refused) = parsec(&["scheduler", "--no-migrate", "--rounds", "1"]);
    assert!(!ok && refused.contains("parsec migrate"), "{refused}");
    assert!(!refused.contains("panicked"), "{refused}");
    assert!(!database.exists(), "--no-migrate created the database");

    let (ok, refused) = parsec(&["prune", "--older-than", "90d"]);
    assert!(!ok && refused.contains("parsec migrate"), "{refused}");
    assert!(!database.exists(), "a prune created the database");

    let (ok, applied) = parsec(&["migrate"]);
    assert!(ok && applied.contains("applied "), "{applied}");
    let (ok, current) = parsec(&["migrate", "--dry-run"]);
    assert!(ok && current.contains(", 0 pending"), "{current}");
    // Migrated: the scheduler opens it without migrating (and finds no server to measure).
    let (_, ran) = parsec(&[
        "scheduler",
        "--no-migrate",
        "--rounds",
        "1",
        "--readiness-timeout",
        "1s",
    ]);
    assert!(!ran.contains("parsec migrate"), "{ran}");
    assert!(ran.contains("scheduler registered"), "{ran}");

    // Retention: a period that is likely a slip, or reaches before any time, is refused with the
    // fix; the scheduler row just made is newer than any cutoff.
    for (period, fix) in [("1m", "at least 1d"), ("999999999d", "shorter period")] {
        let (ok, refused) = parsec(&["prune", "--older-than", period]);
        assert!(
            !ok && refused.contains(fix) && !refused.contains("panicked"),
            "{refused}"
        );
    }
    let (ok, counted) = parsec(&["prune", "--older-than", "90d", "--dry-run"]);
    assert!(ok && counted.contains("schedulers_ecs"), "{counted}");
    assert!(
        counted.contains("dry run: 0 row(s) would go; nothing deleted"),
        "{counted}"
    );
    let (ok, pruned) = parsec(&["prune", "--older-than", "90d", "--batch-rows", "100"]);
    assert!(ok && pruned.contains("0 row(s) deleted"), "{pruned}");
}

/// A reprovide round as read back from a SQLite store, with the count and CIDs of its region
/// rows.
#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct StoredReprovide {
    #[diesel(sql_type = diesel::sql_types::Text)]
    strategy: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    lookups: i64,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    found: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    regions: i32,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    region_cids: i64,
}

/// Distinct node rows, round ids and scheduler fleets the reprovide rounds in `database` name.
fn stored_reprovide_identities(database: &std::path::Path) -> (i32, i32, String) {
    use diesel::{Connection as _, RunQueryDsl as _};
    #[derive(diesel::QueryableByName)]
    struct Identities {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        nodes: i32,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        rounds: i32,
        #[diesel(sql_type = diesel::sql_types::Text)]
        fleets: String,
    }
    let mut conn = diesel::SqliteConnection::establish(database.to_str().unwrap()).unwrap();
    let found: Identities = diesel::sql_query(
        "SELECT CAST(count(DISTINCT r.node_id) AS INTEGER) AS nodes, \
         CAST(count(DISTINCT r.round_id) AS INTEGER) AS rounds, \
         (SELECT fleets FROM schedulers_ecs LIMIT 1) AS fleets FROM reprovide_rounds_ecs r",
    )
    .get_result(&mut conn)
    .unwrap();
    (found.nodes, found.rounds, found.fleets)
}

/// The reprovide rounds stored in the SQLite file at `database`, by strategy.
fn stored_reprovide_rounds(database: &std::path::Path) -> Vec<StoredReprovide> {
    use diesel::{Connection as _, RunQueryDsl as _};
    let mut conn = diesel::SqliteConnection::establish(database.to_str().unwrap()).unwrap();
    diesel::sql_query(
        "SELECT r.strategy, r.lookups, o.found, \
         (SELECT CAST(count(*) AS INTEGER) FROM reprovide_regions_ecs g \
          WHERE g.round_measurement_id = r.measurement_id) AS regions, \
         (SELECT CAST(coalesce(sum(cids), 0) AS BIGINT) FROM reprovide_regions_ecs g \
          WHERE g.round_measurement_id = r.measurement_id) AS region_cids \
         FROM reprovide_rounds_ecs r \
         JOIN reprovide_observations_ecs o ON o.round_measurement_id = r.measurement_id \
         ORDER BY r.strategy",
    )
    .load(&mut conn)
    .unwrap()
}
