//! Shared test set-up: a local libp2p network whose nodes serve the real HTTP API on loopback.

#![allow(dead_code, unreachable_pub)]

pub mod process;
pub mod stored;

use std::{net::TcpListener, time::Duration};

use actix::prelude::*;
use parsec::api;
use parsec_actors::{
    network::TransportKind,
    testing::{spawn_fleet, LocalFleet},
    DhtConfig, DhtHandle, NodeActor, NodeRecipients,
};

/// A node's API served on an OS-chosen loopback port.
pub fn serve_node(node: &Addr<NodeActor>) -> String {
    serve_node_with_token(node, None)
}

/// A node's API requiring `token`, served on an OS-chosen loopback port.
pub fn serve_node_with_token(node: &Addr<NodeActor>, token: Option<api::ApiToken>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let options = api::ApiOptions {
        token,
        ..api::ApiOptions::default()
    };
    let server = api::serve(listener, NodeRecipients::of(node), options, 1).unwrap();
    actix::spawn(server);
    url
}

/// `peers` background DHT peers and `servers` nodes over TCP, each node with its HTTP API.
pub async fn http_fleet(
    peers: usize,
    servers: usize,
    runtime: &tokio::runtime::Handle,
) -> (LocalFleet, Vec<String>) {
    let fleet = spawn_fleet(peers, servers, TransportKind::Tcp, runtime)
        .await
        .unwrap();
    let urls = fleet.nodes.iter().map(serve_node).collect();
    (fleet, urls)
}

/// A node on a DHT peer that knows nobody (never ready until given peers).
pub async fn lone_node(runtime: &tokio::runtime::Handle) -> (DhtHandle, Addr<NodeActor>, String) {
    let config = parsec_actors::network::local_peer_config(&DhtConfig::default(), TransportKind::Tcp);
    let peer = DhtHandle::spawn(config, runtime).await.unwrap();
    let node = NodeActor::new(peer.clone()).start();
    let url = serve_node(&node);
    (peer, node, url)
}

/// An HTTP client with a generous timeout.
pub fn client() -> awc::Client {
    awc::Client::builder().timeout(Duration::from_secs(30)).finish()
}

/// What a database holds after a run, counted the same way on both backends.
#[derive(Debug, PartialEq, Eq, diesel::QueryableByName)]
pub struct StoredCounts {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub provides: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub retrievals: i64,
    /// Distinct measurement ids across both tables (equal to the rows when none is duplicated).
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub distinct_measurements: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub rounds: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub schedulers: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub nodes: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub nodes_with_heartbeat: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub nodes_offline: i64,
}

const COUNTS: &str = "SELECT \
    (SELECT count(*) FROM provides_ecs) AS provides, \
    (SELECT count(*) FROM retrievals_ecs) AS retrievals, \
    (SELECT count(DISTINCT measurement_id) FROM \
        (SELECT measurement_id FROM provides_ecs UNION ALL SELECT measurement_id FROM retrievals_ecs) AS m) \
        AS distinct_measurements, \
    (SELECT count(DISTINCT round_id) FROM provides_ecs) AS rounds, \
    (SELECT count(*) FROM schedulers_ecs) AS schedulers, \
    (SELECT count(*) FROM nodes_ecs) AS nodes, \
    (SELECT count(last_heartbeat) FROM nodes_ecs) AS nodes_with_heartbeat, \
    (SELECT count(offline_since) FROM nodes_ecs) AS nodes_offline";

/// Counts what the SQLite file at `path` holds.
pub fn sqlite_counts(path: &std::path::Path) -> StoredCounts {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    diesel::sql_query(COUNTS).get_result(&mut conn).unwrap()
}

/// Counts what the Postgres database at `url` holds.
pub async fn postgres_counts(url: &str) -> StoredCounts {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    diesel::sql_query(COUNTS).get_result(&mut conn).await.unwrap()
}

/// `parsec testnet` with 20 peers and 3 servers, `rounds` rounds on `transport`, writing to
/// `database_url`, without progress bars; add flags and run it.
pub fn testnet_command(rounds: u32, transport: &str, database_url: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_parsec"));
    command
        .args(["testnet", "--peers", "20", "--servers", "3", "--no-progress"])
        .args(["--rounds", &rounds.to_string(), "--transport", transport])
        .args(["--database-url", database_url]);
    command
}
