//! What a Postgres database holds after scheduler runs, read back for assertions.

use chrono::{DateTime, Utc};
use diesel::{
    sql_types::{Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid},
    QueryableByName,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

/// One provide or retrieval row.
#[derive(Debug, Clone, QueryableByName)]
pub struct StoredMeasurement {
    /// `provide` or `retrieval`.
    #[diesel(sql_type = Text)]
    pub operation: String,
    #[diesel(sql_type = Int4)]
    pub scheduler_id: i32,
    #[diesel(sql_type = Int4)]
    pub node_id: i32,
    #[diesel(sql_type = SqlUuid)]
    pub round_id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    pub cid: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub error: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub started_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    pub trace_id: Option<String>,
    /// `warm` or `cold`, when the server said.
    #[diesel(sql_type = Nullable<Text>)]
    pub connections: Option<String>,
}

/// One `nodes_ecs` row's identity and liveness.
#[derive(Debug, Clone, QueryableByName)]
pub struct StoredNode {
    #[diesel(sql_type = Int4)]
    pub id: i32,
    #[diesel(sql_type = Text)]
    pub fleet: String,
    #[diesel(sql_type = Int4)]
    pub server_port: i32,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_heartbeat: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub offline_since: Option<DateTime<Utc>>,
}

impl StoredNode {
    /// Heartbeating and not marked offline: what a scheduler measures.
    pub fn live(&self) -> bool {
        self.last_heartbeat.is_some() && self.offline_since.is_none()
    }
}

/// Waits up to `timeout` until `count` nodes heartbeat (their servers are ready); panics with
/// the rows otherwise.
pub fn wait_for_live_nodes(url: &str, count: usize, timeout: std::time::Duration) {
    let live = || nodes(url).iter().filter(|n| n.live()).count();
    assert!(
        super::process::wait_until(timeout, || live() >= count),
        "servers never all heartbeated: {:?}",
        nodes(url)
    );
}

fn query<T: QueryableByName<diesel::pg::Pg> + Send + 'static>(url: &str, sql: &str) -> Vec<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = AsyncPgConnection::establish(url).await.unwrap();
        diesel::sql_query(sql).load(&mut conn).await.unwrap()
    })
}

/// Every measurement row, provides first, each in start order.
pub fn measurements(url: &str) -> Vec<StoredMeasurement> {
    query(
        url,
        "SELECT 'provide' AS operation, scheduler_id, node_id, round_id, cid, error, started_at, trace_id, \
         connections FROM provides_ecs UNION ALL \
         SELECT 'retrieval', scheduler_id, node_id, round_id, cid, error, started_at, trace_id, connections \
         FROM retrievals_ecs ORDER BY operation, started_at",
    )
}

/// Every measurement's operation, duration in seconds, and whether it succeeded.
pub fn durations(url: &str) -> Vec<(String, f64, bool)> {
    #[derive(QueryableByName)]
    struct Duration {
        #[diesel(sql_type = Text)]
        operation: String,
        #[diesel(sql_type = diesel::sql_types::Double)]
        seconds: f64,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        succeeded: bool,
    }
    query::<Duration>(
        url,
        "SELECT 'provide' AS operation, duration AS seconds, error IS NULL AS succeeded \
         FROM provides_ecs \
         UNION ALL SELECT 'retrieval', duration, error IS NULL FROM retrievals_ecs",
    )
    .into_iter()
    .map(|d| (d.operation, d.seconds, d.succeeded))
    .collect()
}

/// Every node row, in id order.
pub fn nodes(url: &str) -> Vec<StoredNode> {
    query(
        url,
        "SELECT id, fleet, server_port, last_heartbeat, offline_since FROM nodes_ecs ORDER BY id",
    )
}

/// The node registered with API port `port`.
pub fn node_on_port(url: &str, port: u16) -> StoredNode {
    nodes(url)
        .into_iter()
        .find(|n| n.server_port == i32::from(port))
        .unwrap_or_else(|| panic!("no node registered on port {port}"))
}

/// The API port of a server URL (`http://127.0.0.1:port`).
pub fn port_of(http: &str) -> u16 {
    http.rsplit(':').next().unwrap().parse().unwrap()
}

/// Connections the Postgres server at `url` has open for clients, this one left out.
pub fn client_connections(url: &str) -> usize {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        connections: i64,
    }
    let counted: Vec<Count> = query(
        url,
        "SELECT count(*) AS connections FROM pg_stat_activity \
         WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
    );
    counted
        .iter()
        .map(|c| usize::try_from(c.connections).unwrap_or(0))
        .sum()
}
