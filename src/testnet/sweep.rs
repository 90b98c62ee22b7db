//! A testnet run as `parsec testnet` asks for it: one network size, or a sweep of sizes one after
//! the other; each run on its own runtime, its report printed and written; the bootstrap load
//! across sizes; and whether everything measured (the command's exit status).

use std::{path::PathBuf, time::Duration};

use actix::System;
use anyhow::Context as _;
use parsec_actors::local_network::dht_runtime;

use super::{load, TestnetConfig, TestnetReport};
use crate::{job::Shutdown, report};

/// What to run and how to say it.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// Every size's configuration but its peer count.
    pub config: TestnetConfig,
    /// Background peers, one size after the other.
    pub sizes: Vec<usize>,
    /// Threads of each size's DHT runtime.
    pub threads: usize,
    /// Where the reports go (a folder per size when there are several).
    pub report: Option<PathBuf>,
    /// The network as the heading names it: transport, start, latency.
    pub network: String,
    /// The start mode, as the load table names it.
    pub start: String,
    /// What the first shutdown signal prints.
    pub interrupt_hint: &'static str,
}

impl Sweep {
    /// Checks every size before the first starts, then runs them; true if every size measured.
    pub fn run(&self) -> anyhow::Result<bool> {
        let configs: Vec<TestnetConfig> = self
            .sizes
            .iter()
            .map(|&peers| TestnetConfig {
                peers,
                ..self.config.clone()
            })
            .collect();
        for config in &configs {
            config.check()?;
        }
        let mut loads = Vec::new();
        let mut measured = true;
        for (index, config) in configs.iter().enumerate() {
            let report_dir = self.report.as_ref().map(|dir| match configs.len() {
                1 => dir.clone(),
                _ => dir.join(format!("peers-{}", config.peers)),
            });
            if configs.len() > 1 {
                println!(
                    "\n=== sweep {}/{}: {} peers ===",
                    index + 1,
                    configs.len(),
                    config.peers
                );
            }
            let (ok, load) = self.run_size(config, report_dir.as_deref())?;
            measured &= ok;
            loads.extend(load);
        }
        if !loads.is_empty() {
            println!(
                "\nbootstrap load ({} start; setup and rounds): the first background peer against the \
                 other background peers",
                self.start
            );
            print!("{}", load::table(&loads));
            if let Some(dir) = &self.report {
                load::write(&loads, &self.start, dir)?;
                println!("chart: {}", dir.join("bootstrap-load.svg").display());
            }
        }
        Ok(measured)
    }

    /// One size: runs it, prints its report and writes it into `report_dir` if given; whether it
    /// measured, and the bootstrap peer's load.
    fn run_size(
        &self,
        config: &TestnetConfig,
        report_dir: Option<&std::path::Path>,
    ) -> anyhow::Result<(bool, Option<load::BootstrapLoad>)> {
        let runtime = dht_runtime(self.threads).context("starting the DHT runtime")?;
        let handle = runtime.handle().clone();
        let result = System::new().block_on(async {
            let shutdown = Shutdown::on_signals(self.interrupt_hint);
            super::run(config.clone(), handle, shutdown).await
        });
        runtime.shutdown_timeout(Duration::from_secs(2));
        let report = result?;
        let failures = report.failures();
        let TestnetReport {
            run: report,
            fleet_of,
            region_of,
            bootstrap_load,
        } = report;
        let fleets: Vec<&str> = config.fleets.iter().map(|f| f.name.as_str()).collect();
        println!(
            "\nparsec testnet: {} peers + {} servers ({}) {}, {} rounds run",
            config.peers,
            config.total_servers(),
            fleets.join(", "),
            self.network,
            report.rounds_run,
        );
        println!();
        let mut sections = Vec::new();
        if !region_of.is_empty() {
            sections.push(report::region_table(&report.rows, &region_of));
        }
        if config.fleets.len() > 1 {
            sections.push(report::group_table("fleet", &report.rows, &fleet_of));
        }
        if !report::print_run(&report, &sections, &[]) {
            return Ok((false, bootstrap_load));
        }
        if let Some(dir) = report_dir {
            let title = format!("parsec testnet: {} peers, {}", config.peers, fleets.join(", "));
            if !report::write_run_report(report.stored.as_ref(), title, Vec::new(), dir) {
                return Ok((false, bootstrap_load));
            }
        }
        for failure in &failures {
            eprintln!("error: {failure}");
        }
        Ok((failures.is_empty(), bootstrap_load))
    }
}
