//! The `parsec` binary: parse the command line, install logging, run the command.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = parsec::cli::Cli::parse();
    let telemetry = parsec::telemetry::init(cli.command.default_log_filter(), cli.command.service_name());
    let code = match cli.command.run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}
