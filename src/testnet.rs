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
pub mod load;
pub mod pubsub;
pub mod reprovide;
pub mod script_peer;
pub mod sweep;
pub mod wan;

use std::{
    collections::HashMap,
    net::TcpListener,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use anyhow::{bail, Context as _};
use parsec_actors::{
    local_network::{self, LocalPeer, StartMode, TransportKind},
    CheckReadiness, DhtClient, DhtConfig, DhtHandle, DhtMode, FleetMember, LinkConditions, Membership,
    NodeId, NodeRecipients, RoundConfig,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
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
    sim::Profile,
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
    /// Servers with an HTTP API per fleet, driven by the scheduler.
    pub servers: usize,
    /// The fleets: a name and the DHT client its servers run. Rounds span all of them: one
    /// server provides, the servers of every fleet retrieve.
    pub fleets: Vec<TestnetFleet>,
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
    /// The public network's conditions to apply to every connection (the simulator's profile:
    /// regions, delays, peers that never answer); `None`: `dht.latency` alone.
    pub profile: Option<Profile>,
}

/// A fleet of testnet servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestnetFleet {
    /// The fleet's name in the database.
    pub name: String,
    /// Who publishes and looks up on its servers.
    pub client: DhtClient,
}

impl TestnetFleet {
    /// A fleet named after its client (`default`, `classic`, `optprov`, `fullrt`).
    pub fn of(client: DhtClient) -> Self {
        Self {
            name: client.name().to_owned(),
            client,
        }
    }
}

/// What a testnet run measured, and the fleet of each server.
#[derive(Debug)]
pub struct TestnetReport {
    pub run: RunReport,
    pub fleet_of: HashMap<NodeId, String>,
    /// The region of each server under `--profile` (empty without one).
    pub region_of: HashMap<NodeId, String>,
    /// What the first background peer carried against the others, read before the tear-down.
    pub bootstrap_load: Option<load::BootstrapLoad>,
}

impl TestnetReport {
    /// Why the run failed to measure what it was asked to, one reason a line: nothing succeeded
    /// at all, or a fleet none of whose retrievals found a record (the figures compare fleets,
    /// and a fleet without one has no figure).
    pub fn failures(&self) -> Vec<String> {
        if let Some(reason) = self.run.nothing_measured() {
            return vec![reason];
        }
        let mut fleets: Vec<&str> = self.fleet_of.values().map(String::as_str).collect();
        fleets.sort_unstable();
        fleets.dedup();
        fleets
            .into_iter()
            .filter_map(|fleet| {
                let retrievals: Vec<_> = self
                    .run
                    .rows
                    .iter()
                    .filter(|r| r.operation == parsec_actors::Operation::Retrieval)
                    .filter(|r| self.fleet_of.get(&r.node).map(String::as_str) == Some(fleet))
                    .collect();
                retrievals.iter().all(|r| r.error.is_some()).then(|| {
                    format!(
                        "fleet {fleet}: none of its {} retrievals found a provider record",
                        retrievals.len()
                    )
                })
            })
            .collect()
    }
}

impl TestnetConfig {
    /// Servers in all fleets.
    pub fn total_servers(&self) -> usize {
        self.servers * self.fleets.len()
    }

    /// Rejects a run that cannot measure anything or cannot fit on this machine, before
    /// anything starts.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.fleets.is_empty() {
            bail!("at least one fleet must run");
        }
        let mut names: Vec<&str> = self.fleets.iter().map(|f| f.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        if names.len() != self.fleets.len() {
            bail!("each fleet must have its own name (a strategy appears twice in --fleets)");
        }
        if self.total_servers() < 2 {
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
    /// Each server's node id and fleet, in the order of `servers` (kept after the tear-down).
    server_fleets: Vec<(NodeId, String)>,
    /// Each server's node id and region, under `--profile`.
    server_regions: Vec<(NodeId, String)>,
    /// The background peers' load, read at the tear-down.
    bootstrap_load: Option<load::BootstrapLoad>,
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
pub async fn run(
    config: TestnetConfig,
    runtime: Handle,
    shutdown: Shutdown,
) -> anyhow::Result<TestnetReport> {
    config.check()?;
    let options = RunOptions::offline(config.database.clone(), config.rounds as u64, config.progress);
    let mut testnet = TestnetJob {
        config: &config,
        runtime,
        shutdown: shutdown.clone(),
        peers: Vec::new(),
        servers: Vec::new(),
        server_fleets: Vec::new(),
        server_regions: Vec::new(),
        bootstrap_load: None,
    };
    let run = job::run(&mut testnet, options, shutdown).await?;
    let fleet_of = testnet.server_fleets.into_iter().collect();
    let region_of = testnet.server_regions.into_iter().collect();
    Ok(TestnetReport {
        run,
        fleet_of,
        region_of,
        bootstrap_load: testnet.bootstrap_load,
    })
}

/// A server's peer, before its [`Server`] starts: its fleet and, under `--profile`, its region.
#[derive(Debug)]
struct ServerPeer {
    peer: DhtHandle,
    fleet: String,
    region: Option<String>,
}

impl TestnetJob<'_> {
    /// Starts the background peers (kept on `self`) and the servers' peers of every fleet, wires
    /// them, and joins the servers' peers; returns those with their fleets and regions.
    async fn start_network(&mut self, progress: bool) -> anyhow::Result<Vec<ServerPeer>> {
        let config = self.config;
        let conditions = config
            .profile
            .map(|p| Arc::new(wan::PublicNetworkConditions::new(p)));
        let mut peer_template = config.dht.clone();
        peer_template.set_mode(DhtMode::Server);
        if let Some(conditions) = &conditions {
            peer_template.set_link_conditions(Some(conditions.clone() as Arc<dyn LinkConditions>));
        }
        let peer_config = local_network::local_peer_config(&peer_template, config.transport);
        let mut server_config = peer_config.clone();
        server_config.set_mode(if config.server_mode {
            DhtMode::Server
        } else {
            DhtMode::Client
        });

        let total = (config.peers + config.total_servers()) as u64;
        let starting = bar(progress, total, "starting peers");
        self.peers = local_network::spawn_peers(config.peers, &peer_config, &self.runtime, |n| {
            starting.set_position(n as u64)
        })
        .await
        .context("starting DHT peers")?;
        let mut server_peers = Vec::with_capacity(config.total_servers());
        let mut fleets = Vec::with_capacity(config.total_servers());
        for fleet in &config.fleets {
            let mut fleet_config = server_config.clone();
            fleet_config.set_client(fleet.client);
            let started = (config.peers + server_peers.len()) as u64;
            let peers = local_network::spawn_peers(config.servers, &fleet_config, &self.runtime, |n| {
                starting.set_position(started + n as u64)
            })
            .await
            .with_context(|| format!("starting the servers' peers of fleet {}", fleet.name))?;
            fleets.extend(std::iter::repeat_n(fleet.name.clone(), peers.len()));
            server_peers.extend(peers);
        }
        starting.finish();
        let mut rng = ChaCha8Rng::seed_from_u64(config.round.seed.unwrap_or(0));
        let regions = match &conditions {
            Some(conditions) => self.place_in_regions(conditions, &server_peers, &mut rng),
            None => vec![None; server_peers.len()],
        };

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
        if let Some(conditions) = &conditions {
            self.make_dead_peers(conditions, &mut rng).await?;
        }
        wiring.finish();
        Ok(server_peers
            .into_iter()
            .zip(fleets)
            .zip(regions)
            .map(|((peer, fleet), region)| ServerPeer { peer, fleet, region })
            .collect())
    }

    /// Places every peer in a region of the profile, each fleet's servers spread over the regions
    /// in turn from the first, so fleets compared side by side sit in the same regions. Returns the
    /// servers' region names, in order.
    fn place_in_regions(
        &self,
        conditions: &wan::PublicNetworkConditions,
        servers: &[DhtHandle],
        rng: &mut ChaCha8Rng,
    ) -> Vec<Option<String>> {
        for peer in &self.peers {
            conditions.place_at_random(peer.peer_id(), rng);
        }
        servers
            .iter()
            .enumerate()
            .map(|(index, server)| {
                let region = conditions.regions().of_server(index, self.config.servers);
                conditions.place(server.peer_id(), region);
                Some(conditions.region_name(&server.peer_id()))
            })
            .collect()
    }

    /// Makes the profile's share of the background peers unreachable once the network is wired
    /// and joined, and closes their connections: they stay in routing tables as dead entries do
    /// on the public network (peers that left), and the set-up did not wait for them. Bootstrap
    /// and hub peers stay reachable.
    async fn make_dead_peers(
        &self,
        conditions: &wan::PublicNetworkConditions,
        rng: &mut ChaCha8Rng,
    ) -> anyhow::Result<()> {
        let reachable_seeds = match self.config.start {
            StartMode::Converged => 0,
            StartMode::Bootstrap { bootstrappers } => bootstrappers,
            StartMode::Star => 1,
        };
        for peer in self.peers.iter().skip(reachable_seeds) {
            if rng.gen_bool(conditions.unreachable_share()) {
                conditions.make_unreachable(peer.peer_id());
                peer.disconnect_all()
                    .await
                    .context("closing a dead peer's connections")?;
            }
        }
        tracing::info!(
            profile = %conditions.profile(),
            unreachable = conditions.unreachable_count(),
            peers = self.peers.len(),
            "public network conditions applied"
        );
        Ok(())
    }

    /// Starts a [`Server`] on each of `peers` (kept on `self` as it starts).
    async fn start_servers(&mut self, peers: Vec<ServerPeer>, setup: &SetUp) -> anyhow::Result<()> {
        let config = self.config;
        // Each server registers and heartbeats as a standalone parsec server does.
        let resources = host::detect_resources(std::net::Ipv4Addr::LOCALHOST.into())
            .await
            .map_err(anyhow::Error::msg)?;
        for ServerPeer { peer, fleet, region } in peers {
            let server = Server::start(
                peer,
                ServerOptions {
                    api_listener: TcpListener::bind("127.0.0.1:0").context("binding a server's HTTP port")?,
                    api: ApiOptions::default(),
                    http_workers: 1,
                    fleet: fleet.clone(),
                    registry: setup.registry.clone(),
                    resources: resources.clone(),
                    heartbeat_interval: config.heartbeat_interval,
                    region: region.clone(),
                },
            )
            .await?;
            if let Some(region) = region {
                self.server_regions.push((server.node_id(), region));
            }
            self.server_fleets.push((server.node_id(), fleet));
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
            .zip(&self.server_fleets)
            .map(|(server, (_, fleet))| {
                let remote = RemoteNode::new(server.base_url(), timeouts).start();
                FleetMember::new(server.node_id(), server.base_url(), NodeRecipients::of(&remote))
                    .in_fleet(fleet)
            })
            .collect();
        wait_until_ready(&members).await?;
        Ok(Fleet {
            membership: Membership::Fixed(members),
            round: config.round.clone(),
            fleets: config.fleets.iter().map(|f| f.name.clone()).collect(),
        })
    }

    async fn tear_down(&mut self) {
        self.bootstrap_load = load::BootstrapLoad::measure(&self.peers);
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use parsec_actors::{testing::sample_measurement, NodeId, Operation, RecorderStats};

    use super::*;

    fn retrieval(node: i64, error: Option<&str>) -> parsec_actors::Measurement {
        parsec_actors::Measurement {
            node: NodeId(node),
            error: error.map(str::to_owned),
            ..sample_measurement(Operation::Retrieval, Duration::from_millis(120))
        }
    }

    #[test]
    fn a_fleet_whose_retrievals_all_failed_fails_the_run_by_name() {
        let fleet_of = HashMap::from([
            (NodeId(1), "default".to_owned()),
            (NodeId(2), "fullrt".to_owned()),
        ]);
        let rows = vec![
            retrieval(1, None),
            retrieval(2, Some("not found")),
            retrieval(2, Some("reached no peer")),
        ];
        let report = |rows: Vec<parsec_actors::Measurement>| TestnetReport {
            run: RunReport {
                rounds_run: 2,
                recorder: RecorderStats {
                    received: rows.len() as u64,
                    succeeded: rows.iter().filter(|r| r.error.is_none()).count() as u64,
                    ..RecorderStats::default()
                },
                rows,
                ..RunReport::default()
            },
            fleet_of: fleet_of.clone(),
            region_of: HashMap::new(),
            bootstrap_load: None,
        };
        assert_eq!(
            report(rows.clone()).failures(),
            ["fleet fullrt: none of its 2 retrievals found a provider record"]
        );
        let all_failed = rows.into_iter().skip(1).collect();
        assert_eq!(
            report(all_failed).failures(),
            ["2 rounds ran, but none of their 2 operations succeeded; nothing was measured"]
        );
        assert!(report(vec![retrieval(1, None), retrieval(2, None)])
            .failures()
            .is_empty());
    }
}
