//! The `parsec` binary: parse the command line, install logging, run the command.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = parsec::cli::Cli::parse_checked();
    let filter = cli.global.log_filter(&cli.command);
    let telemetry = parsec::telemetry::init(&filter, cli.command.service_name(), cli.global.log_format);
    let code = match cli.command.run(cli.global) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}
