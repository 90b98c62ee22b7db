//! `parsec health <host:port>`: a health check for container orchestrators.

use std::{process::ExitCode, time::Duration};

use clap::Args;

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
        let url = if self.address.starts_with("http://") || self.address.starts_with("https://") {
            format!("{}/readiness", self.address.trim_end_matches('/'))
        } else {
            format!("http://{}/readiness", self.address)
        };
        let timeout = self.timeout;
        let outcome = actix::System::new().block_on(async move {
            let client = awc::Client::default();
            match client.get(&url).timeout(timeout).send().await {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => Err(format!("{url} answered {}", response.status())),
                Err(e) => Err(format!("{url}: {e}")),
            }
        });
        match outcome {
            Ok(()) => {
                println!("OK");
                Ok(ExitCode::SUCCESS)
            }
            Err(reason) => {
                eprintln!("not ready: {reason}");
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
