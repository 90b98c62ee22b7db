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
use parsec_actors::{DhtHandle, GoOffline, HeartbeatActor, NodeActor, NodeId, NodeRecipients, Registry};

use crate::{
    api::{self, ApiOptions},
    host::{self, Resources},
    job::{Shutdown, Stage},
};

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
}

/// Assembles servers; see the module docs.
#[derive(Debug)]
pub struct Server;

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    peer: DhtHandle,
    node: Addr<NodeActor>,
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
        let registration = host::registration(
            options.resources,
            peer.peer_id().to_string(),
            options.fleet,
            api_address.port(),
            host::peer_port(peer.listen_addrs()),
        );
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
            options.api,
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
            node,
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

    /// The server's DHT peer.
    pub fn peer(&self) -> &DhtHandle {
        &self.peer
    }

    /// The server's node, in process.
    pub fn node(&self) -> &Addr<NodeActor> {
        &self.node
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
                let _ = self.peer.shutdown().await;
            }
        }
        let _ = self.peer.shutdown().await;
    }
}
