//! One parsec server, assembled once: a [`NodeActor`] on a running DHT peer, its HTTP API, and
//! its `nodes_ecs` row kept alive by a [`HeartbeatActor`]. `parsec server dht`, the testnet and
//! the tests all start servers through [`Server::start`] and stop them through
//! [`ServerHandle::stop`].
//!
//! ```text
//! HTTP API (actix-web) ──ProvideContent / RetrieveContent / CheckReadiness──▶ NodeActor ──▶ DhtHandle
//! HeartbeatActor ──CheckReadiness──▶ NodeActor;  HeartbeatActor ──heartbeat / offline──▶ Registry
//! ```

use std::{
    net::{SocketAddr, TcpListener},
    sync::Arc,
    time::Duration,
};

use actix::prelude::*;
use anyhow::Context as _;
use parsec_actors::{
    local_network::dht_runtime, node::pubsub::PubsubRecipients, DhtConfig, DhtHandle, GoOffline,
    HeartbeatActor, Libp2pMetrics, MemoryRegistry, NodeActor, NodeId, NodeRecipients, Registry,
};

use crate::{
    api::{self, ApiOptions, ApiToken},
    db::{self, DatabaseTarget, Store},
    host::{self, Resources},
    job::{Shutdown, Stage},
    telemetry::{
        health::DatabaseUp,
        metrics::{self, MetricsEndpoint, ServerMetrics},
    },
};

/// The longest wait between two attempts to join the network (bootstrap peers unreachable).
const MAX_JOIN_BACKOFF: Duration = Duration::from_secs(30);

/// Everything a server needs besides its DHT peer.
#[derive(Debug)]
pub struct ServerOptions {
    /// Where the HTTP API listens (bound by the caller, so the port is known and free).
    pub api_listener: TcpListener,
    /// Token and metrics of the API.
    pub api: ApiOptions,
    /// HTTP worker threads.
    pub http_workers: usize,
    /// The fleet the server registers in.
    pub fleet: String,
    /// Where the server registers and heartbeats.
    pub registry: Arc<dyn Registry>,
    /// What the server registers about its machine.
    pub resources: Resources,
    /// How often `last_heartbeat` is refreshed (the first beat waits for readiness).
    pub heartbeat_interval: Duration,
    /// The region registered in `nodes_ecs` (`None`: `AWS_REGION`, as parsec's servers do; a
    /// testnet under `--profile` names the region its peer was placed in).
    pub region: Option<String>,
}

/// Assembles servers; see the module docs.
#[derive(Debug)]
pub struct Server;

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    peer: DhtHandle,
    node_id: NodeId,
    api_address: SocketAddr,
    http: actix_web::dev::ServerHandle,
    serving: tokio::task::JoinHandle<()>,
    heartbeat: Addr<HeartbeatActor>,
}

impl Server {
    /// Starts a server on `peer`: registers it, then serves its API. Must run inside an actix
    /// `System`.
    pub async fn start(peer: DhtHandle, options: ServerOptions) -> anyhow::Result<ServerHandle> {
        let api_address = options
            .api_listener
            .local_addr()
            .context("reading the API's address")?;
        let node = NodeActor::new(peer.clone()).start();
        let mut registration = host::registration(
            options.resources,
            peer.peer_id().to_string(),
            options.fleet,
            api_address.port(),
            host::peer_port(peer.listen_addrs()),
        );
        if let Some(region) = options.region {
            registration.region = region;
        }
        let (heartbeat, node_id) = HeartbeatActor::register(
            options.registry,
            registration,
            node.clone().recipient(),
            options.heartbeat_interval,
        )
        .await
        .context("registering the server in nodes_ecs")?;
        let server = match api::serve(
            options.api_listener,
            NodeRecipients::of(&node),
            ApiOptions {
                pubsub: peer.speaks_pubsub().then(|| PubsubRecipients::of(&node)),
                reprovide: Some(node.clone().recipient()),
                ..options.api
            },
            options.http_workers,
        ) {
            Ok(server) => server,
            Err(e) => {
                let _ = heartbeat.send(GoOffline).await;
                return Err(e).context("starting the HTTP API");
            }
        };
        let http = server.handle();
        let serving = actix::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        Ok(ServerHandle {
            peer,
            node_id,
            api_address,
            http,
            serving,
            heartbeat,
        })
    }
}

impl ServerHandle {
    /// The server's `nodes_ecs` id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Where the HTTP API listens.
    pub fn api_address(&self) -> SocketAddr {
        self.api_address
    }

    /// The API's base URL, e.g. `http://127.0.0.1:7070`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.api_address)
    }

    /// Stops the server: marks it offline first (schedulers stop picking it), then lets requests
    /// in flight finish within `grace`. Past the grace, or once `shutdown` reaches
    /// [`Stage::Abandon`], they are cancelled (answered 503: schedulers do not store them).
    pub async fn stop(self, grace: Duration, shutdown: &mut Shutdown) {
        if let Err(e) = self.heartbeat.send(GoOffline).await {
            tracing::warn!(node = %self.node_id, error = %e, "heartbeat actor gone before marking the node offline");
        }
        let graceful = self.http.stop(true);
        tokio::pin!(graceful);
        tokio::select! {
            finished = tokio::time::timeout(grace, &mut graceful) => {
                if finished.is_err() {
                    tracing::warn!(node = %self.node_id, "in-flight requests did not finish in time: cancelling them");
                    let _ = self.peer.shutdown().await;
                    graceful.await;
                }
                let _ = self.serving.await;
            }
            () = shutdown.reached(Stage::Abandon) => {
                tracing::warn!("second signal: cancelling in-flight requests now");
            }
        }
        // The peer stops with its server; operations still in flight answer 503.
        let _ = self.peer.shutdown().await;
    }
}

/// A standalone server, as `parsec server dht` runs one: its own DHT peer joining a network, its
/// metrics endpoint, registered in a database, until SIGINT/SIGTERM.
#[derive(Debug)]
pub struct Standalone {
    /// The DHT peer's settings (network, identity, listen and announced addresses, …).
    pub dht: DhtConfig,
    /// The network's name for the logs (`project/network`).
    pub network: String,
    /// Where the server registers (`None`: a dry run, registering nowhere).
    pub database: Option<DatabaseTarget>,
    /// Whether the server migrates the database at start (`--no-migrate`: no).
    pub schema: db::SchemaPolicy,
    /// Where the HTTP API listens.
    pub api_address: SocketAddr,
    /// The bearer token provide and retrieve require.
    pub token: Option<ApiToken>,
    /// HTTP worker threads.
    pub http_workers: usize,
    /// The fleet the server registers in.
    pub fleet: String,
    /// How often `last_heartbeat` is refreshed.
    pub heartbeat_interval: Duration,
    /// After the first signal, how long requests in flight may finish.
    pub shutdown_grace: Duration,
    /// How long to wait before starting (a fleet's peers come up first).
    pub startup_delay: Duration,
    /// Where `/metrics` is served.
    pub metrics: MetricsEndpoint,
}

impl Standalone {
    /// Runs the server on an actix `System` of its own until SIGINT/SIGTERM, its swarm on a
    /// runtime of `dht_threads` threads (what `parsec server dht` does).
    pub fn run_until_signalled(self, dht_threads: usize) -> anyhow::Result<()> {
        let runtime = dht_runtime(dht_threads).context("starting the DHT runtime")?;
        let handle = runtime.handle().clone();
        let result = System::new().block_on(self.run(handle));
        runtime.shutdown_timeout(Duration::from_secs(5));
        result
    }

    /// Runs the server inside the current actix `System` until SIGINT/SIGTERM; its swarm runs on
    /// `runtime`.
    pub async fn run(mut self, runtime: tokio::runtime::Handle) -> anyhow::Result<()> {
        // The database first: a server that cannot register is invisible to schedulers.
        let (registry, store) = self.registry().await?;
        let mut shutdown = Shutdown::on_signals("");
        if !self.startup_delay.is_zero() {
            tracing::info!(delay = ?self.startup_delay, "waiting before starting (--startup-delay)");
            tokio::select! {
                () = tokio::time::sleep(self.startup_delay) => {}
                () = shutdown.reached(Stage::Finish) => return Ok(()),
            }
        }
        // One registry for parsec's, libp2p's and the process's metrics, all labelled with the
        // fleet (dashboards and alerts group by it wherever the server is scraped from).
        let mut metrics_registry = metrics::registry(Some(&self.fleet));
        let server_metrics = ServerMetrics::register(&mut metrics_registry);
        let database_up = DatabaseUp::register(&mut metrics_registry);
        self.dht
            .set_metrics(Some(Libp2pMetrics::register(&mut metrics_registry)));
        let resources = host::detect_resources(self.api_address.ip())
            .await
            .map_err(anyhow::Error::msg)
            .context("reading this machine's resources")?;
        // New connections stop at 90% of the memory this server may use (the ECS limit, or the
        // host's), before the kernel or ECS kills it.
        if resources.memory_mb > 0 {
            self.dht
                .set_max_memory_bytes(Some(resources.memory_mb as u64 * 1024 * 1024 / 10 * 9));
        }
        let peer = self.spawn_peer(&runtime).await?;
        self.metrics.start(metrics_registry);

        let api_listener = TcpListener::bind(self.api_address)
            .with_context(|| format!("binding the HTTP API to {}", self.api_address))?;
        let server = Server::start(
            peer,
            ServerOptions {
                api_listener,
                api: ApiOptions {
                    token: self.token.clone(),
                    metrics: Some(server_metrics),
                    pubsub: None,
                    reprovide: None,
                },
                http_workers: self.http_workers,
                fleet: self.fleet.clone(),
                registry,
                resources,
                heartbeat_interval: self.heartbeat_interval,
                region: None,
            },
        )
        .await?;
        let watching = store.map(|store| actix::spawn(database_up.watch(store)));
        tracing::info!(node_id = %server.node_id(), "registered; first heartbeat once a peer answered");
        tracing::info!(address = %server.api_address(), "HTTP API listening");

        shutdown.reached(Stage::Finish).await;
        tracing::info!(grace = ?self.shutdown_grace, "shutting down: letting in-flight requests finish");
        server.stop(self.shutdown_grace, &mut shutdown).await;
        if let Some(watching) = watching {
            watching.abort();
        }
        Ok(())
    }

    /// Where the server registers: the database (also returned, for its health check), or
    /// nowhere in a dry run.
    async fn registry(&self) -> anyhow::Result<(Arc<dyn Registry>, Option<Store>)> {
        let Some(target) = &self.database else {
            tracing::info!("dry run: registering nowhere");
            return Ok((Arc::new(MemoryRegistry::default()), None));
        };
        let store = Store::open_with(target, self.schema)
            .await
            .with_context(|| format!("opening the database {target}"))?;
        tracing::info!(database = %target, "database ready");
        Ok((db::registry(&store), Some(store)))
    }

    /// Starts the DHT peer and, when it has bootstrap peers, joins in the background.
    async fn spawn_peer(&self, runtime: &tokio::runtime::Handle) -> anyhow::Result<DhtHandle> {
        tracing::info!(
            network = %self.network,
            protocol = %self.dht.protocol,
            bootstrap_peers = self.dht.bootstrap.len(),
            "network"
        );
        let peer = DhtHandle::spawn(self.dht.clone(), runtime)
            .await
            .context("starting the libp2p peer")?;
        tracing::info!(peer_id = %peer.peer_id(), fleet = %self.fleet, "libp2p peer started");
        for address in peer.dialable_addrs() {
            tracing::info!(%address, "listening (paste into other servers' --bootstrap)");
        }
        if !self.dht.bootstrap.is_empty() {
            actix::spawn(join(peer.clone()));
        }
        Ok(peer)
    }
}

/// Joins the network in the background: the API answers (not ready) meanwhile.
async fn join(peer: DhtHandle) {
    let started = std::time::Instant::now();
    match peer.join(MAX_JOIN_BACKOFF).await {
        Ok(reached) => tracing::info!(
            routing_table_size = reached,
            took = ?started.elapsed(),
            "joined the network"
        ),
        Err(e) => tracing::warn!(error = %e, "stopped before joining the network"),
    }
}
