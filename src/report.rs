//! Summaries of a run: per-operation success rate and latency percentiles, per-region and
//! simulator tables, the process's resource use, and the one printer every job's report goes
//! through ([`print_run`]).
//!
//! `parsec report` reads a whole store instead ([`data`]), and draws ([`charts`]) and writes
//! ([`render`]) what it finds; [`write_run_report`] leaves the same report after a run.

pub mod charts;
pub mod data;
pub mod render;

use std::{collections::HashMap, fmt::Write, time::Duration};

use parsec_actors::{Measurement, NodeId, Operation, SchedulerId};

use crate::{
    db::DatabaseTarget,
    job::RunReport,
    sim::{NodeIndex, OperationKind, Outcome},
};

/// Latency figures of one operation.
#[derive(Clone, Debug, PartialEq)]
pub struct OperationStats {
    /// Provide or retrieval.
    pub operation: Operation,
    /// Measurements.
    pub count: usize,
    /// Measurements without error.
    pub successes: usize,
    /// Percentiles of the successful durations (`None` without successes).
    pub p50: Option<Duration>,
    /// 90th percentile.
    pub p90: Option<Duration>,
    /// 95th percentile.
    pub p95: Option<Duration>,
    /// Slowest success.
    pub max: Option<Duration>,
}

impl OperationStats {
    /// Share of measurements without error, 0..=1.
    pub fn success_rate(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.successes as f64 / self.count as f64
        }
    }
}

pub use parsec_actors::model::percentile;

/// Statistics per operation, provide first.
pub fn summarize(rows: &[Measurement]) -> Vec<OperationStats> {
    [Operation::Provide, Operation::Retrieval]
        .into_iter()
        .map(|operation| {
            let of_op: Vec<&Measurement> = rows.iter().filter(|r| r.operation == operation).collect();
            let mut ok: Vec<Duration> = of_op
                .iter()
                .filter(|r| r.error.is_none())
                .map(|r| r.duration)
                .collect();
            ok.sort();
            OperationStats {
                operation,
                count: of_op.len(),
                successes: ok.len(),
                p50: percentile(&ok, 50.0),
                p90: percentile(&ok, 90.0),
                p95: percentile(&ok, 95.0),
                max: ok.last().copied(),
            }
        })
        .collect()
}

fn seconds(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.3}s", d.as_secs_f64()))
}

/// A plain-text table of `stats`.
pub fn render_table(stats: &[OperationStats]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:>6} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "operation", "count", "success", "p50", "p90", "p95", "max"
    );
    for s in stats {
        let _ = writeln!(
            out,
            "{:<10} {:>6} {:>7.1}% {:>9} {:>9} {:>9} {:>9}",
            s.operation.step(),
            s.count,
            100.0 * s.success_rate(),
            seconds(s.p50),
            seconds(s.p90),
            seconds(s.p95),
            seconds(s.max)
        );
    }
    out
}

/// Most frequent error texts per operation, for the report's footnote.
pub fn top_errors(rows: &[Measurement], limit: usize) -> Vec<(Operation, String, usize)> {
    let mut counts = std::collections::BTreeMap::<(String, String), (Operation, usize)>::new();
    for row in rows {
        if let Some(error) = &row.error {
            counts
                .entry((row.operation.step().to_owned(), error.clone()))
                .or_insert((row.operation, 0))
                .1 += 1;
        }
    }
    let mut out: Vec<_> = counts.into_iter().map(|((_, e), (op, n))| (op, e, n)).collect();
    out.sort_by_key(|entry| std::cmp::Reverse(entry.2));
    out.truncate(limit);
    out
}

/// `bytes` in MiB for a report line ("unknown" without a figure).
pub fn mebibytes(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "unknown".to_owned(),
        |b| format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0)),
    )
}

/// Hops and messages per simulated operation (p50 / p90 / max).
pub fn effort_table(outcomes: &[(NodeIndex, Outcome)]) -> String {
    let mut out = format!(
        "{:<10} {:>6} {:>16} {:>20} {:>16}\n",
        "operation", "count", "hops p50/p90/max", "messages p50/p90/max", "failed requests"
    );
    for kind in [OperationKind::Provide, OperationKind::Retrieve] {
        let of_kind: Vec<&Outcome> = outcomes
            .iter()
            .map(|(_, o)| o)
            .filter(|o| o.kind == kind)
            .collect();
        let mut hops: Vec<u32> = of_kind.iter().map(|o| o.hops).collect();
        let mut messages: Vec<u32> = of_kind.iter().map(|o| o.messages).collect();
        hops.sort_unstable();
        messages.sort_unstable();
        let failures: u64 = of_kind.iter().map(|o| u64::from(o.failures)).sum();
        let triple = |v: &[u32]| {
            let at = |p| percentile(v, p).unwrap_or(0);
            format!("{}/{}/{}", at(50.0), at(90.0), v.last().copied().unwrap_or(0))
        };
        let _ = writeln!(
            out,
            "{:<10} {:>6} {:>16} {:>20} {:>16}",
            format!("{kind:?}").to_lowercase(),
            of_kind.len(),
            triple(&hops),
            triple(&messages),
            failures
        );
    }
    out
}

/// Retrieval and provide latencies per region of the measuring server.
pub fn region_table(rows: &[Measurement], region_of: &HashMap<NodeId, String>) -> String {
    group_table("region", rows, region_of)
}

/// Retrieval and provide p50/p90 per group of measuring servers (a region, a fleet), and how
/// many retrievals found a record.
pub fn group_table(label: &str, rows: &[Measurement], group_of: &HashMap<NodeId, String>) -> String {
    let mut out = format!(
        "{label:<8} {:>14} {:>14} {:>12} {:>12} {:>12}\n",
        "retrieval p50", "retrieval p90", "provide p50", "provide p90", "found"
    );
    let mut groups: Vec<&str> = group_of.values().map(String::as_str).collect();
    groups.sort_unstable();
    groups.dedup();
    for group in groups {
        let of_group: Vec<Measurement> = rows
            .iter()
            .filter(|r| group_of.get(&r.node).map(String::as_str) == Some(group))
            .cloned()
            .collect();
        let stats = summarize(&of_group);
        let of = |op: Operation| stats.iter().find(|s| s.operation == op);
        let _ = writeln!(
            out,
            "{:<8} {:>14} {:>14} {:>12} {:>12} {:>12}",
            group,
            seconds(of(Operation::Retrieval).and_then(|s| s.p50)),
            seconds(of(Operation::Retrieval).and_then(|s| s.p90)),
            seconds(of(Operation::Provide).and_then(|s| s.p50)),
            seconds(of(Operation::Provide).and_then(|s| s.p90)),
            of(Operation::Retrieval)
                .map_or_else(|| "-".to_owned(), |s| format!("{}/{}", s.successes, s.count)),
        );
    }
    out
}

/// Prints a run's report: the latency table and the job's own `sections` (when rows were kept),
/// the most frequent errors, failed requests and rounds, the job's `notes`, time and memory, and
/// where the rows are stored. Returns false when some rows could not be stored.
pub fn print_run(report: &RunReport, sections: &[String], notes: &[String]) -> bool {
    if !report.rows.is_empty() {
        print!("{}", render_table(&summarize(&report.rows)));
        for section in sections {
            println!();
            print!("{section}");
        }
        println!();
    }
    for (operation, error, count) in top_errors(&report.rows, 5) {
        println!("{count:>6} × {operation} error: {error}");
    }
    if report.request_failures > 0 {
        println!(
            "{:>6} requests got no answer from their server (not recorded)",
            report.request_failures
        );
    }
    for (error, count) in &report.round_errors {
        println!("round failed ({count}×): {error}");
    }
    for note in notes {
        println!("{note}");
    }
    println!(
        "setup {:.1}s, wall time {:.1}s, peak RSS {}",
        report.setup.as_secs_f64(),
        report.wall.as_secs_f64(),
        mebibytes(report.peak_rss_bytes)
    );
    print_storage(report.stored.as_ref(), report.storage_error.as_deref())
}

/// Where a run's rows are stored, with a query to paste, or why some could not be stored (then
/// false).
fn print_storage(stored: Option<&(DatabaseTarget, SchedulerId)>, storage_error: Option<&str>) -> bool {
    if let Some((target, scheduler)) = stored {
        println!("\nstored in {target} as scheduler {scheduler}; for example:");
        println!("  {}", example_query(target, *scheduler));
    }
    if let Some(error) = storage_error {
        eprintln!("error: measurements could not all be stored: {error}");
        return false;
    }
    true
}

/// A query a user can paste to see a run's rows.
fn example_query(target: &DatabaseTarget, scheduler: SchedulerId) -> String {
    let sql = format!(
        "SELECT step, count(*), avg(duration) AS mean_s, sum((error IS NULL)::int) AS ok \
         FROM retrievals_ecs WHERE scheduler_id = {scheduler} GROUP BY step"
    );
    match target {
        DatabaseTarget::Sqlite { path } => {
            format!("sqlite3 {} \"{}\"", path.display(), sql.replace("::int", ""))
        }
        DatabaseTarget::Postgres { url } => {
            // Without the password: psql asks for it (or reads ~/.pgpass).
            let url = url::Url::parse(url).map_or_else(
                |_| "$DATABASE_URL".to_owned(),
                |mut url| {
                    let _ = url.set_password(None);
                    url.to_string()
                },
            );
            format!("psql \"{url}\" -c \"{sql}\"")
        }
    }
}

/// After a run with `--report DIR` (`parsec testnet`, `parsec simulate`): reads the rows the run
/// `stored` and writes the report in every format into `dir`, and says where; `effort` adds the
/// simulator's hops and messages. Returns false (having said why) when it could not.
pub fn write_run_report(
    stored: Option<&(DatabaseTarget, SchedulerId)>,
    title: String,
    effort: Vec<data::EffortHistogram>,
    dir: &std::path::Path,
) -> bool {
    let Some((target, scheduler)) = stored else {
        eprintln!("error: no report: the run stored no rows to report on");
        return false;
    };
    let written = (|| -> anyhow::Result<Vec<std::path::PathBuf>> {
        let request = data::ReportRequest {
            filter: crate::db::aggregates::ReportFilter {
                scheduler: Some(i32::try_from(scheduler.0)?),
                ..Default::default()
            },
            compare_previous: false,
            title,
        };
        let mut report = data::read(target, &request, &indicatif::ProgressBar::hidden())?;
        report.effort = effort;
        render::write_all(&report, dir)
    })();
    match written {
        Ok(files) => {
            println!(
                "report: {} ({} files)",
                dir.join("report.html").display(),
                files.len()
            );
            true
        }
        Err(error) => {
            eprintln!(
                "error: writing the report into {} failed: {error:#}",
                dir.display()
            );
            false
        }
    }
}

/// Operations of each kind per number of hops and of messages.
pub fn effort_histograms(outcomes: &[(NodeIndex, Outcome)]) -> Vec<data::EffortHistogram> {
    [OperationKind::Provide, OperationKind::Retrieve]
        .into_iter()
        .filter_map(|kind| {
            let mut hops = std::collections::BTreeMap::<u32, u64>::new();
            let mut messages = std::collections::BTreeMap::<u32, u64>::new();
            for (_, outcome) in outcomes.iter().filter(|(_, o)| o.kind == kind) {
                *hops.entry(outcome.hops).or_default() += 1;
                *messages.entry(outcome.messages).or_default() += 1;
            }
            (!hops.is_empty()).then(|| data::EffortHistogram {
                operation: format!("{kind:?}").to_lowercase(),
                hops: hops.into_iter().collect(),
                messages: messages.into_iter().collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use parsec_actors::testing::sample_measurement;

    use super::*;

    fn row(operation: Operation, millis: u64, error: Option<&str>) -> Measurement {
        Measurement {
            error: error.map(str::to_owned),
            ..sample_measurement(operation, Duration::from_millis(millis))
        }
    }

    #[test]
    fn percentiles_use_nearest_rank_over_successes() {
        let mut rows: Vec<_> = (1..=10)
            .map(|i| row(Operation::Retrieval, i * 100, None))
            .collect();
        rows.push(row(Operation::Retrieval, 99_999, Some("not found")));
        let stats = &summarize(&rows)[1];
        assert_eq!(stats.count, 11);
        assert_eq!(stats.successes, 10);
        assert_eq!(stats.p50, Some(Duration::from_millis(500)));
        assert_eq!(stats.p90, Some(Duration::from_millis(900)));
        assert_eq!(stats.p95, Some(Duration::from_millis(1000)));
        assert_eq!(stats.max, Some(Duration::from_millis(1000)));
        assert!(render_table(&summarize(&rows)).contains("90.9%"));
    }

    #[test]
    fn no_rows_no_percentiles() {
        let stats = summarize(&[]);
        assert_eq!(stats[0].p50, None);
        assert_eq!(stats[0].success_rate(), 0.0);
    }

    #[test]
    fn errors_are_counted() {
        let rows = vec![
            row(Operation::Retrieval, 1, Some("not found")),
            row(Operation::Retrieval, 1, Some("not found")),
            row(Operation::Provide, 1, Some("x")),
        ];
        assert_eq!(
            top_errors(&rows, 5)[0],
            (Operation::Retrieval, "not found".into(), 2)
        );
    }
}
