//! `parsec prune --older-than 90d`: deletes the measurements older than a period, and the nodes
//! and schedulers left without any, in bounded batches; with the global `--dry-run`, counts them.

use std::{process::ExitCode, time::Duration, time::Instant};

use anyhow::Context as _;
use chrono::Utc;
use clap::Args;

use super::global::DatabaseArgs;
use crate::db::{prune::PruneRequest, SchemaPolicy, Store};

/// The shortest period a prune accepts: in humantime `1m` is a minute (a month is `1M`), and a
/// slip of that kind must not empty the tables.
const SHORTEST_PERIOD: Duration = Duration::from_secs(86_400);

/// Arguments of `parsec prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Delete rows older than this (e.g. 90d, 26weeks, 1y); at least 1d.
    #[arg(long, value_parser = humantime::parse_duration)]
    older_than: Duration,
    /// The most rows one statement deletes: each batch commits on its own, so writers wait on
    /// no long transaction and an interrupted prune keeps what it deleted.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    batch_rows: u32,
}

impl PruneArgs {
    pub(crate) fn run(self, database: &DatabaseArgs, dry_run: bool) -> anyhow::Result<ExitCode> {
        if self.older_than < SHORTEST_PERIOD {
            anyhow::bail!(
                "--older-than {}: give at least 1d (in humantime 1m is a minute; a month is 1M or 30d)",
                humantime::format_duration(self.older_than)
            );
        }
        let cutoff = super::period_before(Utc::now(), self.older_than).ok_or_else(|| {
            anyhow::anyhow!(
                "--older-than: {} days reach back before any time a row can hold; give a shorter period",
                self.older_than.as_secs() / 86_400
            )
        })?;
        let target = database.target()?;
        super::run_to_completion(async {
            // A prune reads and deletes; the schema is `parsec migrate`'s business.
            let store = Store::open_with(&target, SchemaPolicy::Existing)
                .await
                .with_context(|| format!("opening {target}"))?;
            let started = Instant::now();
            let request = PruneRequest {
                cutoff,
                batch_rows: self.batch_rows,
                dry_run,
            };
            let verb = if dry_run { "would delete" } else { "deleted" };
            println!(
                "{target}: rows older than {} ({cutoff})",
                humantime::format_duration(self.older_than)
            );
            let pruned = store
                .prune(request, |table, rows| {
                    tracing::debug!(table = table.name(), rows, "batch deleted");
                })
                .await
                .with_context(|| format!("pruning {target} (what was deleted before this stays deleted)"))?;
            for table in &pruned {
                println!("  {:<22} {verb} {:>10} row(s)", table.table.name(), table.rows);
            }
            let total: u64 = pruned.iter().map(|t| t.rows).sum();
            let batches: u64 = pruned.iter().map(|t| t.batches).sum();
            if dry_run {
                println!("dry run: {total} row(s) would go; nothing deleted");
            } else {
                println!(
                    "{total} row(s) deleted in {batches} batch(es), {:.1?}",
                    started.elapsed()
                );
            }
            Ok(ExitCode::SUCCESS)
        })
    }
}
