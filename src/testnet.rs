//! `parsec testnet`, the main job: a local network of real libp2p peers in one process, a fleet
//! of [servers](crate::server) each with its real HTTP API on loopback, and a scheduler that
//! drives them through that API, round after round, as parsec does against the public DHT.
//!
//! ```text
//!  round runner (FleetSupervisor) ──HTTP──▶ S servers (API → NodeActor → DhtHandle → swarm)
//!                                              ╲                      ╱
//!                                               N background DHT server peers
//! ```

mod capacity;

use std::{
    net::TcpListener,
    time::{Duration, Instant},
};

use actix::prelude::*;
use anyhow::{bail, Context as _};
use parsec_actors::{
    local_network::{self, LocalPeer, StartMode, TransportKind},
    CheckReadiness, DhtConfig, DhtHandle, DhtMode, FleetMember, Membership, NodeRecipients, RoundConfig,
};
use tokio::runtime::Handle;

use crate::{
    api::{
        client::{ClientTimeouts, RemoteNode},
        ApiOptions,
    },
    db::DatabaseTarget,
    host,
    job::{self, Fleet, Job, RunOptions, RunReport, SetUp, Shutdown},
    progress::bar,
    server::{Server, ServerHandle, ServerOptions},
};

/// How long servers may take to become ready before the run is abandoned.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a server's requests in flight may finish at the end of the run.
const SERVER_STOP_GRACE: Duration = Duration::from_secs(5);

/// What a testnet run does.
#[derive(Clone, Debug)]
pub struct TestnetConfig {
    /// Background DHT server peers.
    pub peers: usize,
    /// Servers with an HTTP API, driven by the scheduler.
    pub servers: usize,
    /// Rounds to run.
    pub rounds: usize,
    /// Transport between peers.
    pub transport: TransportKind,
    /// How peers find each other.
    pub start: StartMode,
    /// Settings every peer starts from (alpha, protocol, timeouts, latency, …).
    pub dht: DhtConfig,
    /// Whether the servers run in DHT server mode.
    pub server_mode: bool,
    /// Round settings (probes, settle, seed).
    pub round: RoundConfig,
    /// Draw progress bars.
    pub progress: bool,
    /// Where servers register and measurements go (`None`: memory only, for embedding).
    pub database: Option<DatabaseTarget>,
    /// How often servers refresh their heartbeat.
    pub heartbeat_interval: Duration,
}

impl TestnetConfig {
    /// Rejects a run that cannot measure anything or cannot fit on this machine, before
    /// anything starts.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.servers < 2 {
            bail!("--servers must be at least 2: one provides, the others retrieve");
        }
        if self.rounds == 0 {
            bail!("--rounds must be at least 1");
        }
        if self.peers == 0 && !self.server_mode {
            bail!(
                "with --peers 0 nobody serves the DHT: the servers are DHT clients, so no record can be \
                 stored. Add --server-mode, or give background peers with --peers"
            );
        }
        capacity::check(self)
    }
}

/// The testnet as a job: what its set-up started, so the tear-down can stop it.
struct TestnetJob<'a> {
    config: &'a TestnetConfig,
    runtime: Handle,
    shutdown: Shutdown,
    peers: Vec<DhtHandle>,
    servers: Vec<ServerHandle>,
}

impl std::fmt::Debug for TestnetJob<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestnetJob")
            .field("peers", &self.peers.len())
            .field("servers", &self.servers.len())
            .finish_non_exhaustive()
    }
}

/// Runs a testnet inside the current actix `System`; swarms run on `runtime`.
pub async fn run(config: TestnetConfig, runtime: Handle, shutdown: Shutdown) -> anyhow::Result<RunReport> {
    config.check()?;
    let options = RunOptions::offline(config.database.clone(), config.rounds as u64, config.progress);
    let mut testnet = TestnetJob {
        config: &config,
        runtime,
        shutdown: shutdown.clone(),
        peers: Vec::new(),
        servers: Vec::new(),
    };
    job::run(&mut testnet, options, shutdown).await
}

impl TestnetJob<'_> {
    /// Starts the background peers (kept on `self`) and the servers' peers, wires them, and joins
    /// the servers' peers; returns those.
    async fn start_network(&mut self, progress: bool) -> anyhow::Result<Vec<DhtHandle>> {
        let config = self.config;
        let mut peer_template = config.dht.clone();
        peer_template.set_mode(DhtMode::Server);
        let peer_config = local_network::local_peer_config(&peer_template, config.transport);
        let mut server_config = peer_config.clone();
        server_config.set_mode(if config.server_mode {
            DhtMode::Server
        } else {
            DhtMode::Client
        });

        let total = (config.peers + config.servers) as u64;
        let starting = bar(progress, total, "starting peers");
        self.peers = local_network::spawn_peers(config.peers, &peer_config, &self.runtime, |n| {
            starting.set_position(n as u64)
        })
        .await
        .context("starting DHT peers")?;
        let server_peers = local_network::spawn_peers(config.servers, &server_config, &self.runtime, |n| {
            starting.set_position((config.peers + n) as u64)
        })
        .await
        .context("starting server peers")?;
        starting.finish();

        let wiring = bar(progress, 1, "wiring network");
        let local: Vec<LocalPeer> = LocalPeer::all_in(DhtMode::Server, &self.peers)
            .chain(LocalPeer::all_in(server_config.mode, &server_peers))
            .collect();
        local_network::wire(&local, config.start, config.dht.k.get())
            .await
            .context("wiring the network")?;
        local_network::join(&server_peers, READY_TIMEOUT)
            .await
            .context("servers joining the network")?;
        wiring.finish();
        Ok(server_peers)
    }

    /// Starts a [`Server`] on each of `peers` (kept on `self` as it starts).
    async fn start_servers(&mut self, peers: Vec<DhtHandle>, setup: &SetUp) -> anyhow::Result<()> {
        let config = self.config;
        // Each server registers and heartbeats as a standalone parsec server does.
        let resources = host::detect_resources(std::net::Ipv4Addr::LOCALHOST.into())
            .await
            .map_err(anyhow::Error::msg)?;
        for peer in peers {
            let server = Server::start(
                peer,
                ServerOptions {
                    api_listener: TcpListener::bind("127.0.0.1:0").context("binding a server's HTTP port")?,
                    api: ApiOptions::default(),
                    http_workers: 1,
                    fleet: config.round.fleet.clone(),
                    registry: setup.registry.clone(),
                    resources: resources.clone(),
                    heartbeat_interval: config.heartbeat_interval,
                },
            )
            .await?;
            self.servers.push(server);
        }
        Ok(())
    }
}

impl Job for TestnetJob<'_> {
    async fn set_up(&mut self, setup: &SetUp) -> anyhow::Result<Fleet> {
        let config = self.config;
        let server_peers = self.start_network(setup.progress).await?;
        self.start_servers(server_peers, setup).await?;
        // The scheduler sees the servers only through their HTTP APIs.
        let timeouts = ClientTimeouts {
            retrieve: config.dht.retrieve_timeout + Duration::from_secs(10),
            provide: config.dht.provide_timeout + Duration::from_secs(10),
            ..ClientTimeouts::default()
        };
        let members: Vec<FleetMember> = self
            .servers
            .iter()
            .map(|server| {
                let remote = RemoteNode::new(server.base_url(), timeouts).start();
                FleetMember::new(server.node_id(), server.base_url(), NodeRecipients::of(&remote))
            })
            .collect();
        wait_until_ready(&members).await?;
        Ok(Fleet {
            membership: Membership::Fixed(members),
            round: config.round.clone(),
            fleets: vec![config.round.fleet.clone()],
        })
    }

    async fn tear_down(&mut self) {
        for server in self.servers.drain(..) {
            server.stop(SERVER_STOP_GRACE, &mut self.shutdown).await;
        }
        self.peers.clear();
    }
}

/// Waits for every server's `/readiness` to answer 200.
async fn wait_until_ready(members: &[FleetMember]) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    for member in members {
        loop {
            let ready = matches!(
                member.node.readiness.send(CheckReadiness).await,
                Ok(Ok(r)) if r.ready
            );
            if ready {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "server {} did not become ready within {READY_TIMEOUT:?}",
                    member.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
