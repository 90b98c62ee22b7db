//! `parsec health <host:port>`: a health check for container orchestrators. Readiness (the
//! default) asks a server's API whether it has DHT peers; `--liveness` asks any process's
//! telemetry port whether its main loop still runs (`/healthz`), the check that restarts a
//! container: a server without peers is alive, and restarting it would not bring peers.

use std::{process::ExitCode, time::Duration};

use clap::Args;

use crate::api::client::{check_liveness, check_readiness};

/// Arguments of `parsec health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The server's HTTP address (with `--liveness`: the telemetry address), `host:port` or a
    /// full `http://…` URL.
    pub address: String,
    /// Check liveness (`GET /healthz` on the telemetry port) instead of readiness.
    #[arg(long)]
    pub liveness: bool,
    /// How long to wait for the answer.
    #[arg(long, default_value = "5s", value_parser = super::parse_duration)]
    pub timeout: Duration,
}

impl HealthArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        let base_url = if self.address.starts_with("http://") || self.address.starts_with("https://") {
            self.address.trim_end_matches('/').to_owned()
        } else {
            format!("http://{}", self.address)
        };
        if self.liveness {
            return Ok(match check_liveness(base_url.clone(), self.timeout) {
                Ok(_) => {
                    println!("OK");
                    ExitCode::SUCCESS
                }
                Err(reason) => {
                    eprintln!("not alive: {base_url}/healthz: {reason}");
                    ExitCode::FAILURE
                }
            });
        }
        match check_readiness(base_url.clone(), self.timeout) {
            Ok(readiness) if readiness.ready => {
                println!("OK");
                Ok(ExitCode::SUCCESS)
            }
            Ok(readiness) => {
                eprintln!(
                    "not ready: {base_url}/readiness answered that it is not ready ({} peers in its routing table)",
                    readiness.routing_table_size
                );
                Ok(ExitCode::FAILURE)
            }
            Err(reason) => {
                eprintln!("not ready: {base_url}/readiness: {reason}");
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
