//! `parsec report` on a large store: the wall time and peak RSS of the `parsec report` process
//! on 10 million measurement rows, in a throwaway PostgreSQL and in a SQLite file. The rows are
//! made by the databases themselves (generate_series, a recursive CTE): 8 servers of 2 fleets
//! in 4 regions, 90 % retrievals, 2 % errors, over 30 days.
//!
//! Run: `cargo bench --bench report` (options: `-- --rows 10000000 --only postgres|sqlite`).
//! Needs the PostgreSQL server binaries (`apt-get install -y postgresql`).

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use diesel::{connection::SimpleConnection, Connection, SqliteConnection};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use parsec::{
    db::{DatabaseTarget, Store},
    testing::TempPostgres,
};
use parsec_actors::{testing::sample_registration, NodeRegistration, Registry, SchedulerRegistration};

struct Options {
    rows: u64,
    only: Option<String>,
}

fn options() -> Options {
    let mut options = Options {
        rows: 10_000_000,
        only: None,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--rows" => options.rows = pair[1].parse().expect("--rows needs a number"),
            "--only" => options.only = Some(pair[1].clone()),
            _ => {}
        }
    }
    options
}

/// Registers the 8 servers and a scheduler (ids 1..=8 and 1 in a fresh store).
async fn register(store: &Store) {
    for fleet in ["default", "optprov"] {
        for region in ["eu-central-1", "us-east-1", "ap-southeast-2", "sa-east-1"] {
            store
                .register_node(NodeRegistration {
                    fleet: fleet.into(),
                    region: region.into(),
                    ..sample_registration()
                })
                .await
                .unwrap();
        }
    }
    store
        .register_scheduler(SchedulerRegistration {
            fleets: vec!["default".into(), "optprov".into()],
            dependencies: Default::default(),
        })
        .await
        .unwrap();
}

const INSERT: &str = "(scheduler_id, node_id, rt_size, duration, cid, error, created_at, step)";

/// The SELECT list that makes row `number` of `step`, in either dialect: a duration of 0.05 to
/// 20 s, skewed to the fast end (a product of three uniform numbers), one row in 50 an error, the rows
/// spread over 30 days.
fn select(step: &str, number: &str, created_at: &str, random: &str) -> String {
    format!(
        "SELECT 1, {number} % 8 + 1, 150 + {number} % 100, 0.05 + 20.0 * {random} * {random} * {random}, 'bafkreibench', \
         CASE WHEN {number} % 50 = 0 THEN 'no provider found' END, {created_at}, '{step}' "
    )
}

/// (table, step, rows) of the fill: 90 % retrievals.
fn tables(rows: u64) -> [(&'static str, &'static str, u64); 2] {
    let retrievals = rows * 9 / 10;
    [
        ("retrievals_ecs", "retrieval", retrievals),
        ("provides_ecs", "provide", rows - retrievals),
    ]
}

/// Seconds between consecutive rows, for 30 days of them.
fn spacing(rows: u64) -> f64 {
    30.0 * 24.0 * 3600.0 / rows.max(1) as f64
}

fn fill_postgres(url: &str, rows: u64) {
    let seconds = spacing(rows);
    runtime().block_on(async {
        register(
            &Store::open(&DatabaseTarget::Postgres { url: url.into() })
                .await
                .unwrap(),
        )
        .await;
        let mut conn = AsyncPgConnection::establish(url).await.unwrap();
        for (table, step, count) in tables(rows) {
            let created_at =
                format!("timestamptz '2026-11-01 00:00:00+00' + g * interval '{seconds} seconds'");
            let sql = format!(
                "INSERT INTO {table} {INSERT} {} FROM generate_series(1, {count}) g",
                select(step, "g", &created_at, "random()")
            );
            conn.batch_execute(&sql).await.unwrap();
        }
        conn.batch_execute("ANALYZE").await.unwrap();
    });
}

fn fill_sqlite(path: &Path, rows: u64) {
    let seconds = spacing(rows);
    runtime().block_on(async {
        register(
            &Store::open(&DatabaseTarget::Sqlite { path: path.into() })
                .await
                .unwrap(),
        )
        .await;
    });
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    for (table, step, count) in tables(rows) {
        let created_at =
            format!("strftime('%Y-%m-%d %H:%M:%f', '2026-11-01', '+' || (x * {seconds}) || ' seconds')");
        let random = "((random() % 1000000 + 1000000) / 2000000.0)";
        let sql = format!(
            "INSERT INTO {table} {INSERT} WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n \
             WHERE x < {count}) {} FROM n",
            select(step, "x", &created_at, random)
        );
        conn.batch_execute(&sql).unwrap();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `parsec report` on `url`; its wall time and peak RSS (bytes).
// The child is reaped by wait4, which also gives its rusage (std's wait does not).
#[allow(clippy::zombie_processes)]
fn report(url: &str, out: &Path) -> (Duration, u64) {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_parsec"))
        .args([
            "report",
            "--no-progress",
            "--format",
            "html",
            "--database-url",
            url,
            "--out",
        ])
        .arg(out)
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, with pointers to live locals.
    let waited = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    assert!(
        waited > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "parsec report failed"
    );
    (wall, usage.ru_maxrss as u64 * 1024)
}

fn main() {
    let options = options();
    let dir = tempfile::tempdir().unwrap();
    let wanted = |name: &str| options.only.as_deref().is_none_or(|only| only == name);
    println!("parsec report on {} rows (90 % retrievals)", options.rows);
    println!(
        "{:<10} {:>12} {:>14} {:>12}",
        "store", "fill (s)", "report (s)", "peak RSS"
    );
    if wanted("postgres") {
        let pg = TempPostgres::start().unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL: {e}"));
        let started = Instant::now();
        fill_postgres(&pg.url(), options.rows);
        let fill = started.elapsed();
        let (wall, rss) = report(&pg.url(), &dir.path().join("postgres"));
        println!(
            "{:<10} {:>12.1} {:>14.1} {:>8.0} MiB",
            "postgres",
            fill.as_secs_f64(),
            wall.as_secs_f64(),
            rss as f64 / 1048576.0
        );
    }
    if wanted("sqlite") {
        let path = dir.path().join("bench.db");
        let started = Instant::now();
        fill_sqlite(&path, options.rows);
        let fill = started.elapsed();
        let url = format!("sqlite://{}", path.display());
        let (wall, rss) = report(&url, &dir.path().join("sqlite"));
        println!(
            "{:<10} {:>12.1} {:>14.1} {:>8.0} MiB",
            "sqlite",
            fill.as_secs_f64(),
            wall.as_secs_f64(),
            rss as f64 / 1048576.0
        );
    }
}
