//! A deployment left running, as an operator runs one: `parsec server dht` processes and one
//! `parsec scheduler` writing into a durable PostgreSQL, inside a local network of in-process
//! QUIC peers that churns, for a fixed wall-clock time. Along the way one server at a time is
//! stopped (SIGTERM) and started again with its identity, and PostgreSQL is stopped (fast
//! shutdown: connections cut) in the middle of the run and started again.
//!
//! Every `--sample-every-s` it prints the memory and open descriptors of the scheduler and of
//! the one server never restarted, that server's open libp2p connections, the PostgreSQL
//! client connections, and the scheduler's rounds and recorder counters (its own `/metrics`).
//! At the end the scheduler stops on SIGTERM and the rows it recorded are counted in the
//! database: a row recorded and not stored is a row lost.
//!
//! Run: `cargo bench --bench deployment_soak` (options: `-- --minutes 60 --peers 120
//! --servers 3 --interval-ms 0 --churn 1 --churn-every-s 60 --restart-every-s 600
//! --postgres-down-s 20 --sample-every-s 300`). Needs the PostgreSQL server binaries.

#[path = "common/args.rs"]
mod args;
#[path = "common/soak.rs"]
mod soak;

use args::option;
use std::time::{Duration, Instant};

use parsec::testing::{
    process::{summary_figure, wait_until, SchedulerProcess, ServerProcess},
    stored, TempPostgres,
};
use parsec_actors::{
    local_network::{self, dht_runtime, TransportKind},
    DhtConfig, DhtHandle, DhtMode,
};
use rand::Rng;

/// What the run is told to do.
struct Plan {
    duration: Duration,
    peers: usize,
    servers: usize,
    interval: Duration,
    churn: usize,
    churn_every: Duration,
    restart_every: Duration,
    postgres_down: Duration,
    sample_every: Duration,
}

impl Plan {
    fn from_args() -> Self {
        let seconds = |name, default| Duration::from_secs(option(name, default) as u64);
        Self {
            duration: Duration::from_secs(60 * option("--minutes", 60) as u64),
            peers: option("--peers", 120),
            servers: option("--servers", 3).max(2),
            interval: Duration::from_millis(option("--interval-ms", 0) as u64),
            churn: option("--churn", 1),
            churn_every: seconds("--churn-every-s", 60),
            restart_every: seconds("--restart-every-s", 600),
            postgres_down: seconds("--postgres-down-s", 20),
            sample_every: seconds("--sample-every-s", 300),
        }
    }
}

/// A server process and the identity it restarts with.
struct Server {
    process: ServerProcess,
    identity_key: String,
}

impl Server {
    /// Starts a server of fleet `default` on `database_url`, joining through `bootstrappers` (the
    /// same at every start, as a task definition names them: the same command line).
    fn start(identity_key: String, database_url: &str, bootstrappers: &[DhtHandle]) -> Self {
        let seeds: Vec<String> = bootstrappers
            .iter()
            .map(|p| p.dialable_addrs()[0].to_string())
            .collect();
        // The key goes through the environment, as a task definition's secret would (never argv).
        let process = ServerProcess::start_with_env(
            &[
                "--database-url",
                database_url,
                "--bootstrap",
                &seeds.join(","),
                "--heartbeat-interval",
                "10s",
            ],
            &[("PARSEC_SERVER_IDENTITY_KEY", &identity_key)],
        );
        assert!(
            wait_until(Duration::from_secs(60), || process.health()),
            "a server never became ready:\n{}",
            process.log()
        );
        Self {
            process,
            identity_key,
        }
    }
}

/// One line of the table: the run at one moment.
struct Snapshot {
    minute: f64,
    scheduler: soak::Sample,
    server: soak::Sample,
    server_connections: f64,
    postgres_connections: usize,
    rounds_succeeded: f64,
    rounds_failed: f64,
    rows_held: f64,
    rows_dropped: f64,
}

impl Snapshot {
    fn take(
        started: Instant,
        scheduler: &SchedulerProcess,
        metrics: &str,
        server: &ServerProcess,
        url: &str,
    ) -> Self {
        let scheduler_metrics = soak::scrape(metrics);
        let outcome = |o: &str| {
            soak::metric_sum(
                &scheduler_metrics,
                &format!("parsec_rounds_total{{fleet=\"default\",outcome=\"{o}\"}}"),
            )
        };
        Self {
            minute: started.elapsed().as_secs_f64() / 60.0,
            scheduler: soak::sample(scheduler.pid()),
            server: soak::sample(server.child.id()),
            server_connections: soak::open_connections(&soak::scrape(&server.metrics)),
            postgres_connections: stored::client_connections(url),
            rounds_succeeded: outcome("succeeded"),
            rounds_failed: outcome("failed"),
            rows_held: soak::metric_sum(&scheduler_metrics, "parsec_recorder_rows_held"),
            rows_dropped: soak::metric_sum(&scheduler_metrics, "parsec_recorder_rows_dropped_total"),
        }
    }

    fn header() -> &'static str {
        "| minute | scheduler RSS MiB | scheduler fds | server RSS MiB | server fds | server libp2p conns \
         | Postgres conns | rounds ok | rounds failed | rows held | rows dropped |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    }

    fn row(&self) -> String {
        format!(
            "| {:.0} | {:.1} | {} | {:.1} | {} | {:.0} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            self.minute,
            self.scheduler.rss_mib,
            self.scheduler.fds,
            self.server.rss_mib,
            self.server.fds,
            self.server_connections,
            self.postgres_connections,
            self.rounds_succeeded,
            self.rounds_failed,
            self.rows_held,
            self.rows_dropped
        )
    }
}

/// Stops the server at `index` and starts it again with its identity; returns the seconds it was
/// away.
fn restart(servers: &mut Vec<Server>, index: usize, url: &str, bootstrappers: &[DhtHandle]) -> f64 {
    let away = Instant::now();
    let key = servers[index].identity_key.clone();
    // One process per identity at a time, as a rolling restart of one task does.
    let stopping = servers.remove(index);
    let _ = stopping.process.terminate();
    servers.insert(index, Server::start(key, url, bootstrappers));
    away.elapsed().as_secs_f64()
}

fn random_identity_key(rng: &mut impl Rng) -> String {
    (0..32).map(|_| format!("{:02x}", rng.gen::<u8>())).collect()
}

fn main() {
    let plan = Plan::from_args();
    let runtime = dht_runtime(1).unwrap();
    let handle = runtime.handle().clone();
    let mut rng = rand::thread_rng();

    let pg = TempPostgres::start_durable().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
    let url = pg.url();
    let mut template = DhtConfig::default();
    template.set_mode(DhtMode::Server).set_periodic_bootstrap(None);
    let config = local_network::local_peer_config(&template, TransportKind::Quic);
    let mut network = handle
        .block_on(local_network::spawn_converged(plan.peers, &config, &handle))
        .unwrap();
    // Three peers stay for the whole run, as a network's bootstrap peers do; the rest churn.
    let bootstrappers: Vec<DhtHandle> = network.drain(..3).collect();
    let mut servers: Vec<Server> = (0..plan.servers)
        .map(|_| Server::start(random_identity_key(&mut rng), &url, &bootstrappers))
        .collect();
    stored::wait_for_live_nodes(&url, plan.servers, Duration::from_secs(120));

    let scheduler = SchedulerProcess::start(
        &url,
        &[
            "--interval",
            &format!("{}ms", plan.interval.as_millis()),
            "--max-heartbeat-age",
            "1m",
        ],
        &[],
    );
    assert!(
        wait_until(Duration::from_secs(30), || scheduler.metrics().is_some()),
        "the scheduler never served metrics:\n{}",
        scheduler.log()
    );
    let metrics = scheduler.metrics().unwrap();
    println!(
        "{} peers, {} servers, rounds every {:?} (0: back to back), {} peer(s) replaced every {:?}, a server restarted every {:?}, \
         PostgreSQL down {:?} at the middle; {} minutes\n",
        plan.peers,
        plan.servers,
        plan.interval,
        plan.churn,
        plan.churn_every,
        plan.restart_every,
        plan.postgres_down,
        plan.duration.as_secs() / 60
    );
    println!("{}", Snapshot::header());

    let started = Instant::now();
    let take = |servers: &[Server]| Snapshot::take(started, &scheduler, &metrics, &servers[0].process, &url);
    println!("{}", take(&servers).row());
    let (mut next_sample, mut next_churn, mut next_restart) =
        (plan.sample_every, plan.churn_every, plan.restart_every);
    let mut postgres_restarted = None;
    let (mut left, mut joined, mut restarts, mut away) = (0, 0, 0, Vec::new());
    while started.elapsed() < plan.duration {
        std::thread::sleep(Duration::from_millis(500));
        let now = started.elapsed();
        if now >= next_churn {
            let (gone, new) = handle.block_on(soak::churn_peers(
                &mut network,
                plan.churn,
                &config,
                &handle,
                &mut rng,
            ));
            left += gone;
            joined += new;
            next_churn += plan.churn_every;
        }
        if now >= next_restart {
            // Server 0 is the one whose memory is followed; the others take turns.
            let index = 1 + restarts % (plan.servers - 1);
            away.push(restart(&mut servers, index, &url, &bootstrappers));
            restarts += 1;
            next_restart += plan.restart_every;
        }
        if postgres_restarted.is_none() && now >= plan.duration / 2 {
            pg.pause().unwrap();
            std::thread::sleep(plan.postgres_down);
            pg.resume().unwrap();
            postgres_restarted = Some(now);
        }
        if now >= next_sample {
            println!("{}", take(&servers).row());
            next_sample += plan.sample_every;
        }
    }
    if next_sample <= plan.duration {
        println!("{}", take(&servers).row());
    }

    let (status, summary) = scheduler.terminate(Duration::from_secs(120));
    let recorded = summary_figure(&summary, "rows recorded");
    let in_database = stored::measurements(&url).len() as u64;
    let nodes = stored::nodes(&url);
    println!(
        "\nscheduler exit {status}; {summary}\
         \n{left} peers left and {joined} joined; {restarts} server restarts (away {:.1} s p50); \
         PostgreSQL stopped at minute {:.1} for {:?}\
         \nrows recorded {recorded}, in the database {in_database}, lost {}\
         \nnode rows {} for {} server identities ({} online)",
        median(&mut away),
        postgres_restarted.map_or(f64::NAN, |at| at.as_secs_f64() / 60.0),
        plan.postgres_down,
        recorded.saturating_sub(in_database),
        nodes.len(),
        plan.servers,
        nodes.iter().filter(|n| n.live()).count()
    );
    drop(servers);
    drop(network);
    drop(bootstrappers);
    runtime.shutdown_timeout(Duration::from_secs(2));
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
