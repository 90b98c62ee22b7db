//! `parsec testnet`: the main job (see [`crate::testnet`]).

use std::{num::NonZeroUsize, process::ExitCode, time::Duration};

use clap::{Args, ValueEnum};
use parsec_actors::{
    config::{DEFAULT_ALPHA, IPFS_KAD_PROTOCOL},
    local_network::{StartMode, TransportKind},
    Connections, DhtClient, DhtConfig, ReprovideStrategy, RoundConfig,
};

use super::pubsub::GossipsubArgs;
use crate::{
    cli::global::DatabaseArgs,
    sim::Profile,
    testnet::{
        pubsub::{self, PubsubTestnetConfig},
        reprovide::{self, ReprovideTestnetConfig},
        sweep::Sweep,
        TestnetConfig, TestnetFleet,
    },
};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Transport {
    /// TCP on loopback (two file descriptors per connection; ~150–200 bootstrapping peers at most).
    Tcp,
    /// QUIC-v1 on loopback (one UDP socket per peer).
    Quic,
    /// In-process memory transport (no sockets).
    Memory,
}

impl Transport {
    fn kind(self) -> TransportKind {
        match self {
            Transport::Tcp => TransportKind::Tcp,
            Transport::Quic => TransportKind::Quic,
            Transport::Memory => TransportKind::Memory,
        }
    }
}

/// What a testnet measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Measured {
    /// Provide and retrieve rounds through the servers' HTTP API (parsec's measurement).
    Dht,
    /// The pubsub benchmark: --sweep-hosts × --messages, gossipsub delivery among the peers.
    Gossipsub,
    /// Reprovide rounds: a node of ours sends the records of --reprovide-keys CIDs again with
    /// each of --reprovide-strategies (classic: a provide per CID; sweep: region by region).
    Reprovide,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Start {
    /// Fill routing tables as a converged network holds them (fast; few connections).
    Converged,
    /// Join through a few bootstrap peers with real lookups (slow; connects most peers to most).
    Bootstrap,
    /// Every peer knows and dials only the first peer, the hub (the bootstrap-load experiment).
    Star,
}

/// Arguments of `parsec testnet`.
#[derive(Debug, Args)]
pub struct TestnetArgs {
    /// What to measure: `dht` rounds, or `gossipsub` delivery (see the gossipsub flags below).
    #[arg(long, env = "PARSEC_TESTNET_PROTOCOL", value_enum, default_value_t = Measured::Dht)]
    protocol: Measured,
    /// Background DHT server peers.
    #[arg(long, env = "PARSEC_TESTNET_PEERS", default_value_t = 100)]
    peers: usize,
    /// Servers with an HTTP API that the scheduler drives (one provides, the others retrieve);
    /// with --fleets, this many in each fleet.
    #[arg(long, env = "PARSEC_TESTNET_SERVERS", default_value_t = 7)]
    servers: usize,
    /// Who publishes and looks up on the servers: `default` (rust-libp2p's kad) or our engine's
    /// `classic`, `optprov` or `fullrt` (see `parsec server dht --help`).
    #[arg(
        long,
        env = "PARSEC_TESTNET_STRATEGY",
        default_value = "default",
        conflicts_with = "fleets"
    )]
    strategy: DhtClient,
    /// What the servers do with their connections when a provide or retrieval ends: `warm` (as
    /// parsec's servers: only the found provider's connection is closed) or `cold` (every
    /// connection is closed, so the next operation dials afresh). Recorded with every row.
    #[arg(long, env = "PARSEC_TESTNET_CONNECTIONS", default_value = "warm")]
    connections: Connections,
    /// Several fleets side by side, each named after its strategy (e.g. default,optprov,fullrt),
    /// --servers servers each; every round one server provides and those of every fleet retrieve.
    #[arg(long, env = "PARSEC_TESTNET_FLEETS", value_delimiter = ',')]
    fleets: Vec<DhtClient>,
    /// Rounds to run.
    #[arg(long, env = "PARSEC_TESTNET_ROUNDS", default_value_t = 10)]
    rounds: usize,
    /// Transport between peers.
    #[arg(long, env = "PARSEC_TESTNET_TRANSPORT", value_enum, default_value_t = Transport::Quic)]
    transport: Transport,
    /// How peers find each other (`--topology star` for the bootstrap-load experiment). Every run
    /// ends with what the first background peer carried against the others.
    #[arg(long, alias = "topology", env = "PARSEC_TESTNET_START", value_enum, default_value_t = Start::Converged)]
    start: Start,
    /// Run these network sizes (--peers) one after the other, e.g. 50,100,200,400,800, and compare
    /// the bootstrap peer's load across them.
    #[arg(
        long,
        env = "PARSEC_TESTNET_SWEEP",
        value_delimiter = ',',
        conflicts_with = "peers"
    )]
    sweep: Vec<usize>,
    /// Bootstrap peers with `--start bootstrap`.
    #[arg(long, env = "PARSEC_TESTNET_BOOTSTRAPPERS", default_value_t = 3)]
    bootstrappers: usize,
    /// Emulated round-trip time on every connection (e.g. 100ms); none by default.
    #[arg(long, env = "PARSEC_TESTNET_LATENCY", value_parser = super::parse_duration)]
    latency: Option<Duration>,
    /// Apply the simulator's model of the public network to every connection: `ipfs-2023` or
    /// `ipfs-2025` (`parsec simulate --profile`): peers in regions with their round-trip times, and
    /// the profile's share of peers in routing tables that never answer (dials that fail quickly
    /// or time out). See docs/method.md, "The testnet under public-network conditions".
    #[arg(long, env = "PARSEC_TESTNET_PROFILE", conflicts_with = "latency")]
    profile: Option<Profile>,
    /// Lookup concurrency (alpha).
    #[arg(long, env = "PARSEC_TESTNET_ALPHA", default_value_t = NonZeroUsize::new(DEFAULT_ALPHA).expect("non-zero"))]
    alpha: NonZeroUsize,
    /// Run the servers in DHT server mode (default: client mode).
    #[arg(long, env = "PARSEC_TESTNET_SERVER_MODE")]
    server_mode: bool,
    /// Lookups per retrieving server per round.
    #[arg(long, env = "PARSEC_TESTNET_PROBES", default_value_t = 1)]
    probes: u32,
    /// Pause between a provide's answer and the retrievals.
    #[arg(long, env = "PARSEC_TESTNET_SETTLE", default_value = "0s", value_parser = super::parse_duration)]
    settle: Duration,
    /// Deadline of a retrieval.
    #[arg(long, env = "PARSEC_TESTNET_RETRIEVE_TIMEOUT", default_value = "60s", value_parser = super::parse_duration)]
    retrieve_timeout: Duration,
    /// Kademlia protocol name.
    #[arg(long, env = "PARSEC_TESTNET_KAD_PROTOCOL", default_value = IPFS_KAD_PROTOCOL)]
    kad_protocol: String,
    /// Seed of the content generator (reproducible CIDs).
    #[arg(long, env = "PARSEC_TESTNET_SEED")]
    seed: Option<u64>,
    /// Threads of the runtime the swarms run on.
    #[arg(long, env = "PARSEC_TESTNET_THREADS", default_value_t = super::default_dht_threads())]
    threads: std::num::NonZeroUsize,
    /// Do not draw progress bars.
    #[arg(long)]
    no_progress: bool,
    /// At the end, write the run's report (html, md with SVG charts, csv, json) into this folder,
    /// as `parsec report --scheduler ID` would.
    #[arg(long, env = "PARSEC_TESTNET_REPORT")]
    report: Option<std::path::PathBuf>,
    /// How often servers refresh their heartbeat row.
    #[arg(long, env = "PARSEC_TESTNET_HEARTBEAT_INTERVAL", default_value = "60s", value_parser = super::parse_duration)]
    heartbeat_interval: Duration,
    #[command(flatten)]
    pubsub: PubsubSweepArgs,
    #[command(flatten)]
    gossipsub: GossipsubArgs,
    #[command(flatten)]
    reprovide: ReprovideArgs,
}

/// Reprovide rounds (`--protocol reprovide`).
#[derive(Debug, Args)]
struct ReprovideArgs {
    /// CIDs the providing node holds and reprovides in each round.
    #[arg(long, env = "PARSEC_TESTNET_REPROVIDE_KEYS", default_value_t = 10_000)]
    reprovide_keys: usize,
    /// The strategies, one round each: classic (a provide per CID), sweep (region by region).
    #[arg(
        long,
        env = "PARSEC_TESTNET_REPROVIDE_STRATEGIES",
        value_delimiter = ',',
        default_value = "classic,sweep"
    )]
    reprovide_strategies: Vec<ReprovideStrategy>,
    /// Provides (classic) or walks (sweep) at once (go-libp2p-kad-dht's default: 4; Kubo: 16).
    #[arg(long, env = "PARSEC_TESTNET_REPROVIDE_WORKERS", default_value_t = 4)]
    reprovide_workers: usize,
    /// CIDs of each round checked afterwards: found by another peer, held by their true k closest.
    #[arg(long, env = "PARSEC_TESTNET_REPROVIDE_SAMPLE", default_value_t = 200)]
    reprovide_sample: usize,
    /// Rounds per strategy, each on the same CIDs (the strategies side by side in each).
    #[arg(long, env = "PARSEC_TESTNET_REPROVIDE_ROUNDS", default_value_t = 1)]
    reprovide_rounds: usize,
    /// Between two rounds, this share of the peers leaves and as many new ones join (0 to 0.5).
    #[arg(long, env = "PARSEC_TESTNET_REPROVIDE_CHURN", default_value_t = 0.0)]
    reprovide_churn: f64,
}

/// The pubsub benchmark's sweep (`--protocol gossipsub`).
#[derive(Debug, Args)]
struct PubsubSweepArgs {
    /// Network sizes to run one after the other, e.g. 10,20,50,100,200.
    #[arg(
        long,
        env = "PARSEC_TESTNET_SWEEP_HOSTS",
        value_delimiter = ',',
        default_value = "10,20,50"
    )]
    sweep_hosts: Vec<usize>,
    /// Messages per iteration, each count at every size, e.g. 10,50,100.
    #[arg(
        long,
        env = "PARSEC_TESTNET_MESSAGES",
        value_delimiter = ',',
        default_value = "10"
    )]
    messages: Vec<usize>,
    /// Iterations per (hosts, messages) point; each has another publisher, and the median is
    /// reported.
    #[arg(long, env = "PARSEC_TESTNET_ITERATIONS", default_value_t = 3)]
    iterations: usize,
    /// Topics every peer subscribes to; messages go to them in turn.
    #[arg(long, env = "PARSEC_TESTNET_TOPICS", default_value_t = 1)]
    topics: usize,
    /// Size of each message in bytes (its 16-byte id included).
    #[arg(long, env = "PARSEC_TESTNET_MESSAGE_BYTES", default_value_t = 1024)]
    message_bytes: usize,
    /// Peers each host dials at random (besides its neighbour in a ring).
    #[arg(long, env = "PARSEC_TESTNET_DEGREE", default_value_t = 8)]
    degree: usize,
    /// How long after an iteration's first publish a message may still arrive; later counts as
    /// lost.
    #[arg(long, env = "PARSEC_TESTNET_DELIVERY_DEADLINE", default_value = "10s", value_parser = super::parse_duration)]
    delivery_deadline: Duration,
    /// Churn: the share of hosts that leave every topic before each iteration (back one
    /// iteration later), e.g. 0.1.
    #[arg(long, env = "PARSEC_TESTNET_CHURN_TOPICS", default_value_t = 0.0)]
    churn_topics: f64,
    /// Churn: the share of hosts that leave the network (close every connection) before each
    /// iteration and dial back in one iteration later, e.g. 0.05.
    #[arg(long, env = "PARSEC_TESTNET_CHURN_NETWORK", default_value_t = 0.0)]
    churn_network: f64,
    /// js-libp2p gossipsub peers (node processes) that join the mesh at every size as receivers;
    /// their deliveries are reported apart. They dial over TCP: with --transport memory the hosts
    /// also listen on TCP for them.
    #[arg(long, env = "PARSEC_TESTNET_JS_PEERS", default_value_t = 0)]
    js_peers: usize,
    /// The js peer's script; `npm ci --prefix tests/js` installs what it needs.
    #[arg(
        long,
        env = "PARSEC_TESTNET_JS_PEER_SCRIPT",
        default_value = "tests/js/gossip-peer.mjs"
    )]
    js_peer_script: std::path::PathBuf,
}

/// Flags of another protocol's groups (gossipsub's sweep and parameters, the reprovide rounds')
/// named on the command line, which the run would ignore: said as the refusal, or `None`.
pub(super) fn ignored_flags(matches: &clap::ArgMatches) -> Option<String> {
    let protocol = matches
        .get_one::<Measured>("protocol")
        .copied()
        .unwrap_or(Measured::Dht);
    let groups = [
        ("PubsubSweepArgs", Measured::Gossipsub),
        ("GossipsubArgs", Measured::Gossipsub),
        ("ReprovideArgs", Measured::Reprovide),
    ];
    let command = TestnetArgs::augment_args(clap::Command::new("testnet"));
    let mut refusals: Vec<(Measured, Vec<String>)> = Vec::new();
    for group in command.get_groups() {
        let Some(&(_, owner)) = groups.iter().find(|(id, _)| *id == group.get_id().as_str()) else {
            continue;
        };
        if owner == protocol {
            continue;
        }
        let named = group
            .get_args()
            .filter(|id| matches.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine))
            .filter_map(|id| command.get_arguments().find(|a| a.get_id() == id)?.get_long())
            .map(|long| format!("--{long}"));
        match refusals.iter_mut().find(|(p, _)| *p == owner) {
            Some((_, flags)) => flags.extend(named),
            None => refusals.push((owner, named.collect())),
        }
    }
    let this = protocol
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    let said: Vec<String> = refusals
        .into_iter()
        .filter(|(_, flags)| !flags.is_empty())
        .map(|(owner, flags)| {
            let owner = owner
                .to_possible_value()
                .map(|v| v.get_name().to_owned())
                .unwrap_or_default();
            format!(
                "{} only apply to --protocol {owner}; add it, or leave them out of a {this} testnet",
                flags.join(", ")
            )
        })
        .collect();
    (!said.is_empty()).then(|| said.join("; "))
}

impl TestnetArgs {
    fn config(&self, database: &DatabaseArgs) -> anyhow::Result<TestnetConfig> {
        let mut dht = DhtConfig::default();
        dht.set_alpha(self.alpha)
            .set_protocol(self.kad_protocol.clone())
            .set_retrieve_timeout(self.retrieve_timeout)
            .set_latency(self.latency)
            .set_connections(self.connections)
            // Routing tables are wired once; a thousand idle peers must stay idle.
            .set_periodic_bootstrap(None);
        let mut round = RoundConfig::default();
        round
            .set_fleet("testnet")
            .set_probes(self.probes)
            .set_settle(self.settle)
            .set_seed(self.seed);
        let fleets = if self.fleets.is_empty() {
            // One fleet keeps the testnet's own fleet name, whatever its strategy.
            vec![TestnetFleet {
                name: round.fleet.clone(),
                client: self.strategy,
            }]
        } else {
            self.fleets.iter().copied().map(TestnetFleet::of).collect()
        };
        Ok(TestnetConfig {
            peers: self.peers,
            servers: self.servers,
            fleets,
            rounds: self.rounds,
            transport: self.transport.kind(),
            start: match self.start {
                Start::Converged => StartMode::Converged,
                Start::Bootstrap => StartMode::Bootstrap {
                    bootstrappers: self.bootstrappers,
                },
                Start::Star => StartMode::Star,
            },
            dht,
            server_mode: self.server_mode,
            round,
            progress: !self.no_progress,
            database: Some(database.target()?),
            heartbeat_interval: self.heartbeat_interval,
            profile: self.profile,
        })
    }

    pub(crate) fn run(self, database: &DatabaseArgs) -> anyhow::Result<ExitCode> {
        match self.protocol {
            Measured::Gossipsub => return self.run_pubsub(database),
            Measured::Reprovide => return self.run_reprovide(database),
            Measured::Dht => {}
        }
        let config = self.config(database)?;
        let sizes = if self.sweep.is_empty() {
            vec![config.peers]
        } else {
            self.sweep.clone()
        };
        let latency = match (self.profile, self.latency) {
            (Some(profile), _) => format!("{profile} profile (regions, dead peers)"),
            (None, Some(rtt)) => format!("{rtt:?} RTT"),
            (None, None) => "none".to_owned(),
        };
        let sweep = Sweep {
            config,
            sizes,
            threads: self.threads.get(),
            report: self.report.clone(),
            network: format!(
                "over {:?} ({:?} start), latency {latency}",
                self.transport, self.start
            ),
            start: format!("{:?}", self.start).to_lowercase(),
            interrupt_hint: super::INTERRUPT_HINT,
        };
        Ok(if sweep.run()? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }

    /// The pubsub benchmark: prints a line per (hosts, messages) point, writes the charts and a
    /// CSV into `--report`.
    fn run_pubsub(&self, database: &DatabaseArgs) -> anyhow::Result<ExitCode> {
        let config = self.pubsub_config(database)?;
        let delivered = pubsub::run_sweep(
            &config,
            self.threads.get(),
            self.report.as_deref(),
            super::INTERRUPT_HINT,
        )?;
        Ok(if delivered {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }

    /// Reprovide rounds: a line per strategy; fails when a round stored nothing or another peer
    /// found none of its sampled CIDs.
    fn run_reprovide(&self, database: &DatabaseArgs) -> anyhow::Result<ExitCode> {
        let target = database.target()?;
        let mut dht = DhtConfig::default();
        dht.set_alpha(self.alpha)
            .set_protocol(self.kad_protocol.clone())
            .set_retrieve_timeout(self.retrieve_timeout)
            .set_latency(self.latency)
            .set_periodic_bootstrap(None);
        let config = ReprovideTestnetConfig {
            peers: self.peers,
            keys: self.reprovide.reprovide_keys,
            strategies: self.reprovide.reprovide_strategies.clone(),
            workers: self.reprovide.reprovide_workers,
            sample: self.reprovide.reprovide_sample,
            rounds: self.reprovide.reprovide_rounds,
            churn: self.reprovide.reprovide_churn,
            transport: self.transport.kind(),
            dht,
            seed: self.seed.unwrap_or(0),
            progress: !self.no_progress,
        };
        config.check()?;
        let runtime = parsec_actors::local_network::dht_runtime(self.threads.get())?;
        println!(
            "parsec testnet --protocol reprovide: {} peers over {:?}, latency {}, {} CIDs a round, {} workers, \
             {} sampled; figures measured on real peers in this run\n",
            config.peers,
            self.transport,
            self.latency.map_or("none".to_owned(), |rtt| format!("{rtt:?} RTT")),
            config.keys,
            config.workers,
            config.sample
        );
        println!("{}", reprovide::header());
        let handle = runtime.handle().clone();
        let rows = runtime.block_on(async {
            let rows = reprovide::run(&config, &handle).await?;
            let scheduler = crate::job::store_reprovide_rounds(&target, rows.clone()).await?;
            anyhow::Ok((rows, scheduler))
        });
        runtime.shutdown_timeout(Duration::from_secs(2));
        let (rows, scheduler) = rows?;
        // The first round of each, which ran side by side.
        let first = |strategy| rows.iter().map(|r| &r.details).find(|d| d.strategy == strategy);
        if let (Some(classic), Some(sweep)) =
            (first(ReprovideStrategy::Classic), first(ReprovideStrategy::Sweep))
        {
            if sweep.round.lookups > 0 {
                println!(
                    "\n{} needs {:.0}× the lookups of {}, measured side by side in this run",
                    classic.strategy,
                    classic.round.lookups as f64 / sweep.round.lookups as f64,
                    sweep.strategy
                );
            }
        }
        println!(
            "stored in {target} as scheduler {scheduler}: tables reprovide_rounds_ecs, \
             reprovide_observations_ecs and reprovide_regions_ecs"
        );
        let mut failed = false;
        for row in &rows {
            if let Some(error) = &row.error {
                eprintln!("error: the {} round: {error}", row.details.strategy);
                failed = true;
            }
        }
        Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }

    /// The sweep's configuration from the arguments.
    fn pubsub_config(&self, database: &DatabaseArgs) -> anyhow::Result<PubsubTestnetConfig> {
        Ok(PubsubTestnetConfig {
            hosts: self.pubsub.sweep_hosts.clone(),
            messages: self.pubsub.messages.clone(),
            iterations: self.pubsub.iterations,
            topics: self.pubsub.topics,
            message_bytes: self.pubsub.message_bytes,
            degree: self.pubsub.degree,
            deadline: self.pubsub.delivery_deadline,
            pubsub: self.gossipsub.config()?,
            churn: pubsub::ChurnRates {
                topics: self.pubsub.churn_topics,
                network: self.pubsub.churn_network,
            },
            transport: self.transport.kind(),
            seed: self.seed,
            progress: !self.no_progress,
            database: Some(database.target()?),
            js_peers: self.pubsub.js_peers,
            js_script: self.pubsub.js_peer_script.clone(),
        })
    }
}
