//! `parsec testnet`, the main job: a local network of real libp2p peers in one process, a fleet
//! of servers each with its real HTTP API on loopback, and a scheduler that drives them through
//! that API, round after round, as parsec does against the public DHT.
//!
//! ```text
//!  scheduler (FleetSupervisor) ──HTTP──▶ S servers (API → NodeActor → DhtActor → swarm)
//!                                              ╲                      ╱
//!                                               N background DHT server peers
//! ```

use std::{
    net::TcpListener,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use actix::prelude::*;
use anyhow::{bail, Context as _};
use parsec_actors::{
    network::{self, LocalPeer, StartMode, TransportKind},
    DhtConfig, DhtMode, FleetMember, FleetSupervisor, GoOffline, HeartbeatActor, Measurement, NodeActor,
    NodeRecipients, RoundConfig, RunRound, SchedulerId,
};
use tokio::runtime::Handle;

use crate::{
    api::{
        self,
        client::{ClientTimeouts, RemoteNode},
    },
    db::DatabaseTarget,
    host,
    progress::bar,
    recording::JobStorage,
    report,
};

/// How long servers may take to become ready before the run is abandoned.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

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

/// What a testnet run measured.
#[derive(Debug)]
pub struct TestnetReport {
    /// Every measurement recorded.
    pub rows: Vec<Measurement>,
    /// Rounds that ran.
    pub rounds_run: usize,
    /// Rounds that could not run, with the reason.
    pub round_errors: Vec<String>,
    /// Requests that got no report (node errors).
    pub request_failures: usize,
    /// From start until every server was ready.
    pub setup: Duration,
    /// The whole run.
    pub wall: Duration,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: Option<u64>,
    /// Where the rows are stored and under which scheduler id.
    pub stored: Option<(DatabaseTarget, SchedulerId)>,
    /// Why some rows could not be stored (the database stayed unreachable at the end).
    pub storage_error: Option<String>,
}

impl TestnetReport {
    /// Retrievals that found a provider.
    pub fn successful_retrievals(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.operation == parsec_actors::Operation::Retrieval && r.error.is_none())
            .count()
    }
}

/// A server of the testnet: its HTTP API (the node actor keeps its DHT peer alive) and its
/// registry row's heartbeat.
struct Server {
    http: actix_web::dev::ServerHandle,
    heartbeat: Addr<HeartbeatActor>,
    member: FleetMember,
}

/// Runs a testnet inside the current actix `System`; swarms run on `runtime`.
pub async fn run(config: TestnetConfig, runtime: Handle) -> anyhow::Result<TestnetReport> {
    let started = Instant::now();
    if config.servers < 2 {
        bail!("--servers must be at least 2: one provides, the others retrieve");
    }
    let storage = JobStorage::open(config.database.as_ref()).await?;
    let registry = storage.registry();
    if let StartMode::Bootstrap { .. } = config.start {
        if config.transport == TransportKind::Tcp && config.peers > 150 {
            tracing::warn!(
                "TCP peers that bootstrap by lookups connect to nearly every other peer; beyond ~150 \
                 this process runs out of file descriptors. Use --transport quic or --start converged."
            );
        }
    }

    let mut peer_template = config.dht.clone();
    peer_template.set_mode(DhtMode::Server);
    let peer_config = network::local_peer_config(&peer_template, config.transport);
    let mut server_config = peer_config.clone();
    server_config.set_mode(if config.server_mode {
        DhtMode::Server
    } else {
        DhtMode::Client
    });

    let total = (config.peers + config.servers) as u64;
    let starting = bar(config.progress, total, "starting peers");
    let peers = network::spawn_peers(config.peers, &peer_config, &runtime, |n| {
        starting.set_position(n as u64)
    })
    .await
    .context("starting DHT peers")?;
    let server_peers = network::spawn_peers(config.servers, &server_config, &runtime, |n| {
        starting.set_position((config.peers + n) as u64)
    })
    .await
    .context("starting server peers")?;
    starting.finish();

    let wiring = bar(config.progress, 1, "wiring network");
    let local: Vec<LocalPeer> = LocalPeer::all_in(DhtMode::Server, &peers)
        .chain(LocalPeer::all_in(server_config.mode, &server_peers))
        .collect();
    network::wire(&local, config.start, config.dht.k.get())
        .await
        .context("wiring the network")?;
    network::join(&server_peers, READY_TIMEOUT)
        .await
        .context("servers joining the network")?;
    wiring.finish();

    // The scheduler sees the servers only through their HTTP APIs.
    let timeouts = ClientTimeouts {
        retrieve: config.dht.retrieve_timeout + Duration::from_secs(10),
        provide: config.dht.provide_timeout + Duration::from_secs(10),
        ..ClientTimeouts::default()
    };
    let resources = host::detect_resources(std::net::Ipv4Addr::LOCALHOST.into())
        .await
        .map_err(anyhow::Error::msg)?;
    let mut servers = Vec::new();
    for peer in server_peers {
        let node = NodeActor::new(peer.clone()).start();
        let listener = TcpListener::bind("127.0.0.1:0").context("binding a server's HTTP port")?;
        let api_address = listener.local_addr()?;
        let base_url = format!("http://{api_address}");
        let http = api::serve(listener, NodeRecipients::of(&node), api::ApiOptions::default(), 1)?;
        let handle = http.handle();
        actix::spawn(async move {
            if let Err(e) = http.await {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        // Each server registers and heartbeats as a standalone parsec server does.
        let registration = host::registration(
            resources.clone(),
            peer.peer_id().to_string(),
            config.round.fleet.clone(),
            api_address.port(),
            host::peer_port(peer.listen_addrs()),
        );
        let (heartbeat, node_id) = HeartbeatActor::register(
            registry.clone(),
            registration,
            node.recipient(),
            config.heartbeat_interval,
        )
        .await
        .context("registering a server")?;
        let remote = RemoteNode::new(base_url.clone(), timeouts).start();
        servers.push(Server {
            member: FleetMember::new(node_id, base_url, NodeRecipients::of(&remote)),
            http: handle,
            heartbeat,
        });
    }
    let members: Vec<FleetMember> = servers.iter().map(|s| s.member.clone()).collect();
    wait_until_ready(&members).await?;
    let setup = started.elapsed();
    tracing::info!(setup = ?setup, "all servers ready");

    let recording = storage.start_recording(&config.round.fleet).await?;
    let recorder = recording.recorder.clone();
    let supervisor =
        FleetSupervisor::new(members, recorder.clone().recipient(), config.round.clone()).start();

    let rounds_bar = bar(config.progress, config.rounds as u64, "rounds");
    let mut round_errors = Vec::new();
    let mut request_failures = 0;
    let mut rounds_run = 0;
    let interrupted = interrupt_flag();
    for _ in 0..config.rounds {
        if interrupted.load(Ordering::SeqCst) {
            tracing::warn!(
                rounds_run,
                "interrupted: storing what was measured, then stopping"
            );
            break;
        }
        match supervisor.send(RunRound::new()).await? {
            Ok(summary) => {
                rounds_run += 1;
                request_failures += summary.failures.len();
                let found = summary
                    .retrievals
                    .iter()
                    .filter(|(_, r)| r.measurements.iter().all(|m| m.error.is_none()))
                    .count();
                let provide = summary
                    .provide
                    .measurements
                    .first()
                    .map(|m| m.duration)
                    .unwrap_or_default();
                rounds_bar.set_message(format!(
                    "last: provide {:.3}s, found {found}/{}",
                    provide.as_secs_f64(),
                    summary.retrievals.len()
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "round failed");
                round_errors.push(e.to_string());
            }
        }
        rounds_bar.inc(1);
    }
    rounds_bar.finish();
    let recorded = recording.finish().await;

    for server in &servers {
        if let Err(e) = server.heartbeat.send(GoOffline).await {
            tracing::warn!(server = %server.member.name, error = %e, "could not mark the server offline");
        }
        server.http.stop(true).await;
    }
    drop(servers);
    drop(peers);
    Ok(TestnetReport {
        rows: recorded.rows,
        stored: recorded.stored,
        storage_error: recorded.storage_error,
        rounds_run,
        round_errors,
        request_failures,
        setup,
        wall: started.elapsed(),
        peak_rss_bytes: report::peak_rss_bytes(),
    })
}

/// Set by the first Ctrl-C: the round in flight finishes and its rows are stored before the run
/// ends. A second Ctrl-C exits at once.
fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    actix::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        eprintln!(
            "\ninterrupted: finishing the current round and storing its rows (Ctrl-C again to quit now)"
        );
        set.store(true, Ordering::SeqCst);
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
    flag
}

/// Waits for every server's `/readiness` to answer 200.
async fn wait_until_ready(members: &[FleetMember]) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    for member in members {
        loop {
            let ready = matches!(
                member.node.readiness.send(parsec_actors::CheckReadiness).await,
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
