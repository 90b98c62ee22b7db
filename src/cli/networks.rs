//! `parsec networks`: the public networks `parsec server dht --project P --network N` can join.

use std::process::ExitCode;

use clap::Args;
use parsec_actors::dht::presets::{DEFAULT_NETWORK, DEFAULT_PROJECT, PRESETS};

/// Arguments of `parsec networks`.
#[derive(Debug, Args)]
pub struct NetworksArgs {
    /// Print every bootstrap peer, not only how many there are.
    #[arg(long)]
    bootstrap: bool,
}

impl NetworksArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        println!(
            "{:<10} {:<11} {:<35} bootstrap peers",
            "project", "network", "protocol"
        );
        for preset in PRESETS {
            let default = if (preset.project, preset.network) == (DEFAULT_PROJECT, DEFAULT_NETWORK) {
                " (default)"
            } else {
                ""
            };
            println!(
                "{:<10} {:<11} {:<35} {}{default}",
                preset.project,
                preset.network,
                preset.protocol,
                preset.bootstrap.len()
            );
            if self.bootstrap {
                for address in preset.bootstrap {
                    println!("    {address}");
                }
            }
        }
        println!(
            "{:<10} {:<11} {:<35} 0 (a private network: its first server; the others name it in --bootstrap)",
            "any",
            super::server::LOCAL_NETWORK,
            parsec_actors::IPFS_KAD_PROTOCOL
        );
        println!("\n--bootstrap and --protocol override a preset's peers and protocol id.");
        Ok(ExitCode::SUCCESS)
    }
}
