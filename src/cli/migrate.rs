//! `parsec migrate [--dry-run]`: lists the migrations a database lacks, or applies them, on their
//! own, before servers and schedulers started with `--no-migrate` come up.

use std::{process::ExitCode, time::Instant};

use anyhow::Context as _;
use clap::Args;

use super::global::DatabaseArgs;
use crate::db::migrations;

/// Arguments of `parsec migrate`: the database flags, and the global `--dry-run` (list what is
/// applied and pending, change nothing).
#[derive(Debug, Args)]
pub struct MigrateArgs {}

impl MigrateArgs {
    pub(crate) fn run(self, database: &DatabaseArgs, dry_run: bool) -> anyhow::Result<ExitCode> {
        let target = database.target()?;
        super::run_to_completion(async {
            let status = migrations::status(&target)
                .await
                .with_context(|| format!("reading the migrations of {target}"))?;
            println!(
                "{target}: {} migration(s) applied, {} pending",
                status.applied.len(),
                status.pending.len()
            );
            for name in &status.pending {
                println!("  pending: {name}");
            }
            let invalid = migrations::invalid_indexes(&target)
                .await
                .with_context(|| format!("reading the indexes of {target}"))?;
            for index in &invalid {
                eprintln!(
                    "warning: index {index} is invalid (a concurrent build failed or was interrupted): \
                     rebuild it with `REINDEX INDEX CONCURRENTLY {index};`"
                );
            }
            if dry_run || status.pending.is_empty() {
                if dry_run && !status.pending.is_empty() {
                    println!("dry run: nothing applied");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let started = Instant::now();
            let ran = migrations::apply(&target)
                .await
                .with_context(|| format!("migrating {target}"))?;
            println!("applied {} migration(s) in {:.1?}", ran.len(), started.elapsed());
            Ok(ExitCode::SUCCESS)
        })
    }
}
