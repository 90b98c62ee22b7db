//! The embedded default store: the same tables in a SQLite file, through diesel's synchronous
//! SQLite connection on the blocking pool (one connection, one writer at a time).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::{connection::SimpleConnection, prelude::*};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use parsec_actors::{Measurement, NodeId, NodeQuery, SchedulerId, SinkError};
use uuid::Uuid;

use super::{
    migrations::SchemaPolicy,
    postgres::NodeTime,
    rows::{
        DiscoveredRow, MeasurementRow, NodeRow, PubsubRow, RegionRow, ReprovideRow, SchedulerRow, TableRows,
    },
    sqlite_schema::{
        nodes_ecs, provides_ecs, pubsub_deliveries_ecs, pubsub_publishes_ecs, reprovide_observations_ecs,
        reprovide_regions_ecs, reprovide_rounds_ecs, retrievals_ecs, schedulers_ecs,
    },
    DbError,
};

/// The SQLite migrations, compiled in.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// A SQLite file with parsec's tables.
#[derive(Clone)]
pub struct SqliteStore {
    path: PathBuf,
    conn: Arc<Mutex<SqliteConnection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish()
    }
}

/// SQLite stores timestamps as text without a zone; ours are UTC.
fn utc(at: DateTime<Utc>) -> NaiveDateTime {
    at.naive_utc()
}

fn text(id: Uuid) -> String {
    id.to_string()
}

/// `path` as an SQLite URI filename, for opening flags the plain path cannot carry.
fn uri(path: &Path, query: &str) -> Result<String, DbError> {
    let text = path
        .to_str()
        .ok_or_else(|| DbError::Config(format!("{} is not a UTF-8 path", path.display())))?;
    // `?` and `#` end the path of a URI; `%` escapes.
    let escaped = text.replace('%', "%25").replace('?', "%3f").replace('#', "%23");
    Ok(format!("file:{escaped}?{query}"))
}

/// A connection that cannot write: `parsec report` and `parsec migrate --dry-run` read a file
/// without changing it (not even to create tables in a file that is not parsec's).
pub(super) fn establish_read_only(path: &Path) -> Result<SqliteConnection, DbError> {
    let mut conn = SqliteConnection::establish(&uri(path, "mode=ro")?)?;
    conn.batch_execute("PRAGMA query_only = ON;")?;
    Ok(conn)
}

/// Applies the pending migrations of the file at `path` (creating it); returns the versions
/// that ran.
pub(super) async fn migrate(path: &Path) -> Result<Vec<String>, DbError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> Result<Vec<String>, DbError> {
        let mut conn = establish_writer(&path)?;
        run_pending(&mut conn)
    })
    .await
    .map_err(|e| DbError::Connect(format!("migrating the SQLite file failed: {e}")))?
}

/// A writing connection, set up for sharing the file with other processes.
fn establish_writer(path: &Path) -> Result<SqliteConnection, DbError> {
    let url = path
        .to_str()
        .ok_or_else(|| DbError::Config(format!("{} is not a UTF-8 path", path.display())))?;
    let mut conn = SqliteConnection::establish(url)?;
    // WAL lets readers (sqlite3, analysis) work while the recorder writes; the busy
    // timeout lets several processes share the file.
    // The busy timeout first: switching to WAL itself needs the lock.
    conn.batch_execute(
        "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
         PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )?;
    Ok(conn)
}

/// Runs the pending migrations in one exclusive transaction (diesel nests each migration as a
/// savepoint), so processes opening a new file at once migrate it once.
fn run_pending(conn: &mut SqliteConnection) -> Result<Vec<String>, DbError> {
    conn.exclusive_transaction::<_, DbError, _>(|conn| {
        conn.run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect())
            .map_err(|e| DbError::Migrate(e.to_string()))
    })
}

impl SqliteStore {
    /// Opens the file at `path` as `policy` allows: creating and migrating it, opening it as it
    /// is (the caller checked it is current), or read-only.
    pub async fn open(path: &Path, policy: SchemaPolicy) -> Result<Self, DbError> {
        let path = path.to_owned();
        let opened = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<SqliteConnection, DbError> {
            match policy {
                SchemaPolicy::Migrate => {
                    let mut conn = establish_writer(&opened)?;
                    run_pending(&mut conn)?;
                    Ok(conn)
                }
                SchemaPolicy::Existing => establish_writer(&opened),
                SchemaPolicy::ReadOnly => {
                    let mut conn = establish_read_only(&opened)?;
                    conn.batch_execute("PRAGMA busy_timeout = 5000;")?;
                    Ok(conn)
                }
            }
        })
        .await
        .map_err(|e| DbError::Connect(format!("opening the SQLite file failed: {e}")))??;
        Ok(Self {
            path,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    pub(super) async fn with_connection<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut SqliteConnection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            work(&mut conn)
        })
        .await
        .map_err(|e| DbError::Query(format!("SQLite task failed: {e}")))?
    }

    /// Inserts a batch in one transaction; rows already stored are skipped.
    pub(crate) async fn insert_measurements(
        &self,
        scheduler: SchedulerId,
        batch: Vec<Measurement>,
    ) -> Result<(), SinkError> {
        let TableRows {
            provides,
            retrievals,
            publishes,
            deliveries,
            reprovides,
            regions,
        } = TableRows::of(scheduler, &batch)?;
        self.with_connection(move |conn| {
            conn.immediate_transaction::<_, diesel::result::Error, _>(|conn| {
                for row in &publishes {
                    diesel::insert_into(pubsub_publishes_ecs::table)
                        .values(pubsub_values!(publish, row, text, utc))
                        .on_conflict_do_nothing()
                        .execute(conn)?;
                }
                for row in &deliveries {
                    diesel::insert_into(pubsub_deliveries_ecs::table)
                        .values(pubsub_values!(delivery, row, text, utc))
                        .on_conflict_do_nothing()
                        .execute(conn)?;
                }
                // A round before its regions, which refer to it.
                for row in &reprovides {
                    diesel::insert_into(reprovide_rounds_ecs::table)
                        .values(reprovide_values!(round, row, text, utc))
                        .on_conflict_do_nothing()
                        .execute(conn)?;
                    diesel::insert_into(reprovide_observations_ecs::table)
                        .values(reprovide_values!(observation, row, text))
                        .on_conflict_do_nothing()
                        .execute(conn)?;
                }
                for row in &regions {
                    diesel::insert_into(reprovide_regions_ecs::table)
                        .values(reprovide_values!(region, row, text))
                        .on_conflict_do_nothing()
                        .execute(conn)?;
                }
                // One statement per row: SQLite's prepared-statement cache makes that fast, and
                // a multi-row INSERT would hit its bind-parameter limit.
                for row in &provides {
                    diesel::insert_into(provides_ecs::table)
                        .values((
                            measurement_values!(provides_ecs, row, text, utc),
                            provides_ecs::record_peers.eq(row.record_peers),
                        ))
                        .on_conflict_do_nothing()
                        .execute(conn)?;
                }
                for row in &retrievals {
                    diesel::insert_into(retrievals_ecs::table)
                        .values(measurement_values!(retrievals_ecs, row, text, utc))
                        .on_conflict_do_nothing()
                        .execute(conn)?;
                }
                Ok(())
            })
            .map_err(DbError::from)
        })
        .await
        .map_err(|e| SinkError(e.to_string()))
    }

    /// Registers `node`: takes over the newest row of the same node (a restart), else inserts
    /// one; earlier rows of its peer id still marked online are marked offline.
    pub(crate) async fn insert_node(&self, node: NodeRow) -> Result<NodeId, DbError> {
        self.with_connection(move |conn| {
            let ip = |ip: std::net::IpAddr| ip.to_string();
            let id = conn.immediate_transaction::<_, diesel::result::Error, _>(|conn| {
                let reusable: Option<i32> =
                    reusable_node_query!(nodes_ecs, &node, |json: &serde_json::Value| json.to_string())
                        .first(conn)
                        .optional()?;
                let id = match reusable {
                    Some(id) => {
                        reuse_node_row!(nodes_ecs, id, &node, ip, chrono::NaiveDateTime).execute(conn)?;
                        id
                    }
                    None => diesel::insert_into(nodes_ecs::table)
                        .values(node_values!(nodes_ecs, &node, ToString::to_string, ip, utc))
                        .returning(nodes_ecs::id)
                        .get_result(conn)?,
                };
                retire_earlier_rows!(nodes_ecs, &node, id, utc(node.created_at)).execute(conn)?;
                Ok(id)
            })?;
            Ok(NodeId(i64::from(id)))
        })
        .await
    }

    /// Sets one time column of node `id`; returns the rows updated.
    pub(crate) async fn set_node_time(
        &self,
        id: i32,
        column: NodeTime,
        at: DateTime<Utc>,
    ) -> Result<usize, DbError> {
        self.with_connection(move |conn| {
            let target = diesel::update(nodes_ecs::table.find(id));
            Ok(match column {
                NodeTime::LastHeartbeat => target
                    .set((
                        nodes_ecs::last_heartbeat.eq(utc(at)),
                        nodes_ecs::offline_since.eq(offline_unless_older_than!(Timestamp, utc(at))),
                    ))
                    .execute(conn)?,
                NodeTime::OfflineSince => target.set(nodes_ecs::offline_since.eq(utc(at))).execute(conn)?,
            })
        })
        .await
    }

    pub(crate) async fn ping(&self) -> Result<(), DbError> {
        self.with_connection(|conn| Ok(diesel::sql_query("SELECT 1").execute(conn).map(|_| ())?))
            .await
    }

    /// The nodes `query` selects, in id order.
    pub(crate) async fn discover_nodes(&self, query: NodeQuery) -> Result<Vec<DiscoveredRow>, DbError> {
        self.with_connection(move |conn| {
            let rows: Vec<(i32, String, String, String, i32)> =
                discovery_query!(nodes_ecs, &query.fleets, utc(query.heartbeat_since)).load(conn)?;
            rows.into_iter()
                .map(|(id, fleet, peer_id, ip, port)| {
                    let ip = ip
                        .parse()
                        .map_err(|e| DbError::Query(format!("node {id} has IP address {ip:?}: {e}")))?;
                    Ok((id, fleet, peer_id, ip, port))
                })
                .collect()
        })
        .await
    }

    pub(crate) async fn insert_scheduler(&self, scheduler: SchedulerRow) -> Result<SchedulerId, DbError> {
        self.with_connection(move |conn| {
            let fleets = serde_json::Value::from(scheduler.fleets).to_string();
            let id: i32 = diesel::insert_into(schedulers_ecs::table)
                .values((
                    schedulers_ecs::fleets.eq(fleets),
                    schedulers_ecs::dependencies.eq(scheduler.dependencies.to_string()),
                    schedulers_ecs::created_at.eq(utc(scheduler.created_at)),
                ))
                .returning(schedulers_ecs::id)
                .get_result(conn)?;
            Ok(SchedulerId(i64::from(id)))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix::test]
    async fn stores_opening_a_new_file_at_once_migrate_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.sqlite");
        let opens = (0..4).map(|_| SqliteStore::open(&path, SchemaPolicy::Migrate));
        for store in futures::future::join_all(opens).await {
            store.unwrap();
        }
        let store = SqliteStore::open(&path, SchemaPolicy::Migrate).await.unwrap();
        let applied = store
            .with_connection(|conn| {
                Ok(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                    "SELECT count(*) FROM __diesel_schema_migrations",
                )
                .get_result::<i64>(conn)?)
            })
            .await
            .unwrap();
        // Every embedded migration once: parsec's tables, record_peers, pubsub, connections,
        // reprovide.
        assert_eq!(applied, 5);
    }
}
