//! `parsec health <host:port>`: a health check for container orchestrators.

use std::{process::ExitCode, time::Duration};

use clap::Args;

use crate::api::client::check_readiness;

/// Arguments of `parsec health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The server's HTTP address, `host:port` or a full `http://…` URL.
    pub address: String,
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
