//! Rounds per minute a `parsec scheduler` sustains at `--interval 0` against separate
//! `parsec server dht` processes on loopback (one DHT, DHT server mode) and a throwaway
//! PostgreSQL, with the per-round time split into its parts from the stored rows.
//!
//! Run: `cargo bench --bench scheduler` (options: `-- --servers 7 --rounds 300`).
//! Needs the PostgreSQL server binaries (`apt-get install -y postgresql`).

#[path = "common/args.rs"]
mod args;

use args::option;
use std::time::{Duration, Instant};

use parsec::testing::{
    process::{start_fleet, summary_figure, SchedulerProcess},
    stored, TempPostgres,
};

/// Nearest-rank percentile of sorted values (NaN without values).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    parsec::report::percentile(sorted, p).unwrap_or(f64::NAN)
}

/// Sustained pace: rounds/min in each fifth of the run and the gaps between round starts, from
/// the provides' start times.
fn print_sustained(rows: &[stored::StoredMeasurement]) {
    let mut starts: Vec<_> = rows
        .iter()
        .filter(|r| r.operation == "provide")
        .map(|r| r.started_at)
        .collect();
    starts.sort();
    let fifth = (starts.len() / 5).max(2);
    let segments: Vec<String> = starts
        .chunks(fifth)
        .filter(|chunk| chunk.len() >= 2)
        .map(|chunk| {
            let span = (chunk[chunk.len() - 1] - chunk[0]).as_seconds_f64();
            format!("{:.0}", (chunk.len() - 1) as f64 / span * 60.0)
        })
        .collect();
    println!("  rounds per minute, by fifth       {:>9}", segments.join(" → "));
    let mut gaps: Vec<f64> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_seconds_f64())
        .collect();
    gaps.sort_by(f64::total_cmp);
    println!(
        "  gap between round starts p50/p99/max {:.4} / {:.4} / {:.4} s",
        percentile(&gaps, 50.0),
        percentile(&gaps, 99.0),
        gaps.last().copied().unwrap_or(f64::NAN)
    );
}

fn main() {
    let servers = option("--servers", 7);
    let rounds = option("--rounds", 300);
    let pg = TempPostgres::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
    let url = pg.url();
    let _fleet = start_fleet(servers, "default", &url, &[]);
    stored::wait_for_live_nodes(&url, servers, Duration::from_secs(120));

    let started = Instant::now();
    let scheduler = SchedulerProcess::start(
        &url,
        &["--interval", "0", "--rounds", &rounds.to_string()],
        &[("RUST_LOG", "warn")],
    );
    let (status, summary) = scheduler.wait(Duration::from_secs(3600));
    let wall = started.elapsed();
    assert!(status.success(), "{summary}");
    let run = summary_figure(&summary, "rounds run");
    let failed = summary_figure(&summary, "failed");

    let rows = stored::measurements(&url);
    // Percentiles are of successful operations; failures are counted beside them.
    let mut provide_s = Vec::new();
    let mut retrieval_s = Vec::new();
    let (mut provides_failed, mut retrievals_failed) = (0, 0);
    for (operation, seconds, succeeded) in stored::durations(&url) {
        match (operation.as_str(), succeeded) {
            ("provide", true) => provide_s.push(seconds),
            ("provide", false) => provides_failed += 1,
            (_, true) => retrieval_s.push(seconds),
            (_, false) => retrievals_failed += 1,
        }
    }
    provide_s.sort_by(f64::total_cmp);
    retrieval_s.sort_by(f64::total_cmp);
    let minutes = wall.as_secs_f64() / 60.0;
    println!("scheduler, {servers} server processes, --interval 0, {rounds} rounds (release build):");
    println!("  wall time incl. scheduler start  {:>9.1} s", wall.as_secs_f64());
    println!("  rounds run / failed              {run:>9} / {failed}");
    println!("  rounds per minute                {:>9.0}", run as f64 / minutes);
    println!(
        "  rows stored / per second         {:>9} / {:.0}",
        rows.len(),
        rows.len() as f64 / wall.as_secs_f64()
    );
    println!(
        "  provide   p50 / p90 (server)     {:>9.4} / {:.4} s of {} successful, {provides_failed} failed",
        percentile(&provide_s, 50.0),
        percentile(&provide_s, 90.0),
        provide_s.len()
    );
    println!(
        "  retrieval p50 / p90 (server)     {:>9.4} / {:.4} s of {} successful, {retrievals_failed} failed",
        percentile(&retrieval_s, 50.0),
        percentile(&retrieval_s, 90.0),
        retrieval_s.len()
    );
    print_sustained(&rows);
    let slow = |sorted: &[f64]| sorted.iter().filter(|&&d| d > 1.0).count();
    println!(
        "  operations over 1 s: provides {} of {}, retrievals {} of {}",
        slow(&provide_s),
        provide_s.len(),
        slow(&retrieval_s),
        retrieval_s.len()
    );
    println!(
        "  slowest provide / retrieval (server) {:.4} / {:.4} s",
        provide_s.last().copied().unwrap_or(f64::NAN),
        retrieval_s.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  wall time per round (mean)       {:>9.4} s (readiness + provide + slowest retrieval + HTTP)",
        wall.as_secs_f64() / run as f64
    );
}
