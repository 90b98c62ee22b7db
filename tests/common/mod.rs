//! Shared test set-up: a local libp2p network whose nodes serve the real HTTP API on loopback,
//! each started as `parsec server dht` starts its server ([`Server::start`]).

#![allow(dead_code, unreachable_pub)]

use std::{net::TcpListener, sync::Arc, time::Duration};

use parsec::{
    api::{ApiOptions, ApiToken},
    host::Resources,
    server::{Server, ServerHandle, ServerOptions},
};
use parsec_actors::{
    local_network::TransportKind,
    testing::{spawn_fleet, LocalFleet},
    DhtConfig, DhtHandle, MemoryRegistry,
};

/// A server on `peer` with its API (requiring `token`, if any) on an OS-chosen loopback port,
/// registered in memory.
pub async fn start_server(peer: DhtHandle, token: Option<ApiToken>) -> ServerHandle {
    Server::start(
        peer,
        ServerOptions {
            api_listener: TcpListener::bind("127.0.0.1:0").unwrap(),
            api: ApiOptions {
                token,
                ..ApiOptions::default()
            },
            http_workers: 1,
            fleet: "test".to_owned(),
            registry: Arc::new(MemoryRegistry::default()),
            resources: Resources {
                cpu: 1,
                memory_mb: 0,
                ip_address: std::net::Ipv4Addr::LOCALHOST.into(),
            },
            heartbeat_interval: Duration::from_secs(60),
            region: None,
        },
    )
    .await
    .unwrap()
}

/// `peers` background DHT peers and `servers` servers over TCP, each with its HTTP API; keep
/// both alive while the URLs are used.
pub async fn http_fleet(
    peers: usize,
    servers: usize,
    runtime: &tokio::runtime::Handle,
) -> (LocalFleet, Vec<String>, Vec<ServerHandle>) {
    let fleet = spawn_fleet(peers, servers, TransportKind::Tcp, runtime)
        .await
        .unwrap();
    let mut handles = Vec::new();
    for peer in &fleet.node_peers {
        handles.push(start_server(peer.clone(), None).await);
    }
    let urls = handles.iter().map(ServerHandle::base_url).collect();
    (fleet, urls, handles)
}

/// A server whose DHT peer knows nobody (never ready until given peers), requiring `token`.
pub async fn lone_server(
    runtime: &tokio::runtime::Handle,
    token: Option<ApiToken>,
) -> (DhtHandle, ServerHandle) {
    let config = parsec_actors::local_network::local_peer_config(&DhtConfig::default(), TransportKind::Tcp);
    let peer = DhtHandle::spawn(config, runtime).await.unwrap();
    (peer.clone(), start_server(peer, token).await)
}

/// Two `parsec server dht` processes registering in `database_url`, the second joining through
/// the first.
pub fn two_servers(database_url: &str) -> [parsec::testing::process::ServerProcess; 2] {
    parsec::testing::process::start_fleet(2, "default", database_url, &[])
        .try_into()
        .unwrap_or_else(|_| unreachable!("two servers asked for"))
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

/// A connection to the SQLite file at `path` that waits up to 5 s for a lock, as parsec's own
/// connections do: tests read while a running process writes, and a read that meets the writer's
/// lock must wait for it, not fail with "database is locked".
fn sqlite_reader(path: &std::path::Path) -> diesel::SqliteConnection {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    diesel::sql_query("PRAGMA busy_timeout = 5000")
        .execute(&mut conn)
        .unwrap();
    conn
}

/// Counts what the SQLite file at `path` holds.
pub fn sqlite_counts(path: &std::path::Path) -> StoredCounts {
    use diesel::RunQueryDsl;
    diesel::sql_query(COUNTS)
        .get_result(&mut sqlite_reader(path))
        .unwrap()
}

/// `nodes_ecs.last_heartbeat` of node `id` in the SQLite store at `path`, as stored.
pub fn last_heartbeat(path: &std::path::Path, id: i32) -> Option<String> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Beat {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        beat: Option<String>,
    }
    diesel::sql_query("SELECT CAST(last_heartbeat AS TEXT) AS beat FROM nodes_ecs WHERE id = ?")
        .bind::<diesel::sql_types::Integer, _>(id)
        .get_result::<Beat>(&mut sqlite_reader(path))
        .unwrap()
        .beat
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
