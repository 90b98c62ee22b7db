//! `parsec report`: tables and charts of what a store holds (see [`crate::report::data`]).

use std::{path::PathBuf, process::ExitCode, time::Duration};

use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::{
    cli::global::DatabaseArgs,
    db::{aggregates::ReportFilter, DatabaseTarget},
    report::{
        data::{self, ReportRequest},
        render::{self, Format},
    },
};

/// Arguments of `parsec report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Only these fleets (comma-separated).
    #[arg(long, value_delimiter = ',')]
    fleet: Vec<String>,
    /// Only servers in these regions (comma-separated).
    #[arg(long, value_delimiter = ',')]
    region: Vec<String>,
    /// Only these steps (comma-separated; parsec's servers report `provide` and `retrieval`).
    /// Pubsub rows have no step: with --step the report covers the DHT alone.
    #[arg(long, value_delimiter = ',')]
    step: Vec<String>,
    /// Only the rows of this scheduler (one `parsec testnet` or `parsec simulate` run prints its
    /// id).
    #[arg(long, alias = "run")]
    scheduler: Option<i32>,
    /// Rows from this time on (RFC 3339, e.g. 2026-12-01T00:00:00Z, or a UTC day, 2026-12-01).
    #[arg(long, value_parser = parse_time, conflicts_with = "last")]
    since: Option<DateTime<Utc>>,
    /// Rows before this time (same forms as --since).
    #[arg(long, value_parser = parse_time, conflicts_with = "last")]
    until: Option<DateTime<Utc>>,
    /// Rows of the last period, up to now (e.g. 7d, 24h).
    #[arg(long, value_parser = super::parse_duration)]
    last: Option<Duration>,
    /// Only rows whose server's routing table held at least this many peers (ProbeLab counts
    /// only nodes with a populated routing table). Pubsub rows have none: it leaves them out.
    #[arg(long)]
    min_rt_size: Option<i32>,
    /// Compare with the window of equal length just before (needs --last, or --since and --until).
    #[arg(long)]
    compare_previous: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write report.<format> into this folder (with the charts as SVG for text and md) instead of
    /// printing it.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write each chart as PNG (needs --out).
    #[arg(long, requires = "out")]
    png: bool,
    /// Heading of the report.
    #[arg(long, default_value = "parsec report")]
    title: String,
    /// Do not show what is being read.
    #[arg(long)]
    no_progress: bool,
}

/// `2026-12-01T10:00:00Z` or the start of the UTC day `2026-12-01`.
fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|at| at.and_utc())
        .ok_or_else(|| format!("{text:?} is neither RFC 3339 (2026-12-01T10:00:00Z) nor a day (2026-12-01)"))
}

impl ReportArgs {
    fn request(&self) -> anyhow::Result<ReportRequest> {
        let (since, until) = match self.last {
            Some(last) => {
                let now = Utc::now();
                let since = super::period_before(now, last).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--last: {} days reach back before the earliest time a report can name; \
                             give a shorter period (e.g. --last 3650d)",
                        last.as_secs() / 86_400
                    )
                })?;
                (Some(since), Some(now))
            }
            None => (self.since, self.until),
        };
        if let (Some(since), Some(until)) = (since, until) {
            anyhow::ensure!(since < until, "--since must be before --until");
        }
        Ok(ReportRequest {
            filter: ReportFilter {
                fleets: self.fleet.clone(),
                regions: self.region.clone(),
                steps: self.step.clone(),
                scheduler: self.scheduler,
                since,
                until,
                min_rt_size: self.min_rt_size,
            },
            compare_previous: self.compare_previous,
            title: self.title.clone(),
        })
    }

    pub(crate) fn run(self, database: &DatabaseArgs) -> anyhow::Result<ExitCode> {
        let request = self.request()?;
        request.previous_window()?;
        let target = database.target()?;
        if let DatabaseTarget::Sqlite { path } = &target {
            // Opening would create an empty store: say what is missing instead.
            anyhow::ensure!(
                path.exists(),
                "{} does not exist: give the store to read with --database-url (sqlite:///path or \
                 postgres://…) or DATABASE_URL",
                path.display()
            );
        }
        let progress = if self.no_progress {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} reading {msg} {pos}/{len} rows {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        };
        let report = data::read(&target, &request, &progress);
        progress.finish_and_clear();
        let report = report?;
        let written = render::write(&report, self.format, self.out.as_deref(), self.png)?;
        match written.as_slice() {
            [] => {}
            [report] => eprintln!("wrote {}", report.display()),
            [report, charts @ ..] => eprintln!("wrote {} and {} chart files", report.display(), charts.len()),
        }
        Ok(ExitCode::SUCCESS)
    }
}
