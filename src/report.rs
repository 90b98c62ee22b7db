//! Summaries of a run: per-operation success rate and latency percentiles, and the process's
//! resource use.

use std::{fmt::Write, time::Duration};

use parsec_actors::{Measurement, Operation};

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

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

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

/// Peak resident memory of this process (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
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
