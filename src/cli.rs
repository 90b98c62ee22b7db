//! The command line: one subcommand per file. Every flag can also be set through the
//! environment variable parsec uses for it.

pub mod global;
mod health;
mod migrate;
mod networks;
mod prune;
mod pubsub;
mod report;
mod scheduler;
pub(crate) mod server;
mod simulate;
mod testnet;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use self::global::{DatabaseArgs, TelemetryArgs};
use crate::telemetry::LogFormat;

/// Measures how fast a Kademlia DHT publishes and finds provider records.
#[derive(Debug, Parser)]
#[command(name = "parsec", version = crate::host::version(), about)]
pub struct Cli {
    /// Flags every command takes, before or after its name (as parsec has them).
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// parsec's global flags: the database, the metrics endpoint, logging and dry runs.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    #[command(flatten)]
    pub(crate) database: DatabaseArgs,
    #[command(flatten)]
    pub(crate) telemetry: TelemetryArgs,
    /// Debug logging (parsec's flag; `--log-level` overrides it, `RUST_LOG` both).
    #[arg(long, global = true, env = "PARSEC_DEBUG")]
    debug: bool,
    /// Log verbosity from 0 (panics only) to 6 (trace), as parsec's logrus levels.
    #[arg(long, global = true, env = "PARSEC_LOG_LEVEL", value_parser = clap::value_parser!(u8).range(0..=6))]
    log_level: Option<u8>,
    /// How log lines are written: `text`, or `json` (one object per line, the same fields) for
    /// log collectors.
    #[arg(long, global = true, env = "PARSEC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The scheduler runs rounds but stores nothing (no scheduler row, no measurements, no
    /// offline marks); a server registers nowhere. parsec's flag.
    #[arg(long, global = true, env = "PARSEC_SCHEDULE_DRY_RUN")]
    pub(crate) dry_run: bool,
}

impl Cli {
    /// Parses the command line as [`Parser::parse`] does, and also refuses (clap's usage error,
    /// exit 2) a flag that the command line names but the command would ignore.
    pub fn parse_checked() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Self::command().get_matches();
        let cli = Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        if let Some(("testnet", testnet)) = matches.subcommand() {
            if let Some(refusal) = testnet::ignored_flags(testnet) {
                Self::command()
                    .error(clap::error::ErrorKind::ArgumentConflict, refusal)
                    .exit();
            }
        }
        cli
    }
}

impl GlobalArgs {
    /// The log filter when `RUST_LOG` is unset: `--log-level`, else `--debug`, else the
    /// command's own default.
    pub fn log_filter(&self, command: &Command) -> String {
        let level = match self.log_level {
            Some(0 | 1) => Some("off"),
            Some(2) => Some("error"),
            Some(3) => Some("warn"),
            Some(4) => Some("info"),
            Some(5) => Some("debug"),
            Some(_) => Some("trace"),
            None => self.debug.then_some("debug"),
        };
        match level {
            Some(level) => format!("{level},actix_http::h1=off"),
            None => command.default_log_filter().to_owned(),
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a parsec server.
    Server(Box<server::ServerArgs>),
    /// Run the scheduler: discover the fleets' servers in the database and measure them, round
    /// after round, until stopped.
    Scheduler(scheduler::SchedulerArgs),
    /// Run a local network of real libp2p peers and measure it through the HTTP API (offline).
    Testnet(testnet::TestnetArgs),
    /// Run parsec rounds over a simulated Kademlia network of up to millions of nodes, in virtual
    /// time (offline); rows go to the same tables as real measurements.
    Simulate(simulate::SimulateArgs),
    /// Check a server's readiness: prints OK and exits 0 when GET /readiness answers 200.
    Health(health::HealthArgs),
    /// List the public networks a server can join by name (`--project`, `--network`).
    Networks(networks::NetworksArgs),
    /// List the database migrations this build needs (`--dry-run`), or apply them: run it before
    /// servers and schedulers started with `--no-migrate`.
    Migrate(migrate::MigrateArgs),
    /// Delete measurements older than a period (`--older-than 90d`), and the nodes and
    /// schedulers left without any, in bounded batches; `--dry-run` counts them.
    Prune(prune::PruneArgs),
    /// Tables and charts of the stored measurements: per fleet and region, p50/p90/p99 of the
    /// successful attempts, CDFs, days, timelines (text, md, html, csv or json).
    Report(report::ReportArgs),
}

impl Command {
    /// The log filter when `RUST_LOG` is unset: a long-running server logs its requests; the
    /// testnet keeps the terminal for its progress bars and report.
    pub fn default_log_filter(&self) -> &'static str {
        match self {
            // actix-http logs every malformed request from a client at ERROR, which trips alerts
            // for what is not our failure; the API answers those clients 4xx itself.
            Command::Server(_) => "info,libp2p=warn,actix_http::h1=off",
            Command::Scheduler(_) => "info",
            // kad warns once per peer that starts before the testnet wires it ("no known peers").
            Command::Testnet(_) => "warn,libp2p_kad::behaviour=error",
            Command::Simulate(_) => "warn",
            Command::Health(_) | Command::Networks(_) | Command::Report(_) => "warn",
            Command::Migrate(_) | Command::Prune(_) => "info",
        }
    }

    /// The service name of exported traces when `OTEL_SERVICE_NAME` is unset.
    pub fn service_name(&self) -> &'static str {
        match self {
            Command::Server(_) => "parsec-server",
            Command::Scheduler(_) => "parsec-scheduler",
            Command::Testnet(_) => "parsec-testnet",
            Command::Simulate(_) => "parsec-simulate",
            Command::Health(_) => "parsec-health",
            Command::Networks(_) => "parsec-networks",
            Command::Report(_) => "parsec-report",
            Command::Migrate(_) => "parsec-migrate",
            Command::Prune(_) => "parsec-prune",
        }
    }

    /// Runs the command with the global flags; the exit code says whether it did its job.
    pub fn run(self, global: GlobalArgs) -> anyhow::Result<ExitCode> {
        if global.dry_run
            && !matches!(
                self,
                Command::Server(_) | Command::Scheduler(_) | Command::Migrate(_) | Command::Prune(_)
            )
        {
            anyhow::bail!(
                "--dry-run applies to `parsec scheduler`, `parsec server`, `parsec migrate` and `parsec prune`"
            );
        }
        match self {
            Command::Server(args) => args.run(global),
            Command::Scheduler(args) => args.run(global),
            Command::Testnet(args) => args.run(&global.database),
            Command::Simulate(args) => args.run(&global.database),
            Command::Health(args) => args.run(),
            Command::Networks(args) => args.run(),
            Command::Report(args) => args.run(&global.database),
            Command::Migrate(args) => args.run(&global.database, global.dry_run),
            Command::Prune(args) => args.run(&global.database, global.dry_run),
        }
    }
}

/// The time `period` before `now`; `None` when that is before any time chrono can name.
fn period_before(
    now: chrono::DateTime<chrono::Utc>,
    period: std::time::Duration,
) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::Duration::from_std(period)
        .ok()
        .and_then(|period| now.checked_sub_signed(period))
}

/// Runs a one-off database command (`migrate`, `prune`) on a runtime of its own.
fn run_to_completion<T>(job: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(job)
}

/// What an offline job prints at the first Ctrl-C.
pub(crate) const INTERRUPT_HINT: &str =
    "interrupted: stopping after the round in flight and storing what was measured (Ctrl-C again to abandon \
     the round, a third time to exit at once)";

/// Parses durations such as `100ms`, `1m`, `3min`.
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 100ms, 30s, 2m)"))
}

/// Threads for the swarms' runtime: every core the machine has.
pub(crate) fn default_dht_threads() -> std::num::NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(std::num::NonZeroUsize::MIN.saturating_add(1))
}
