//! The PostgreSQL store: diesel-async over a bb8 pool, parsec's tables plus ours.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types::BigInt};
use diesel_async::{
    pooled_connection::{bb8::Pool, AsyncDieselConnectionManager, ManagerConfig},
    AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use ipnet::IpNet;
use parsec_actors::{Measurement, NodeId, NodeQuery, SchedulerId, SinkError};

use super::{
    rows::{
        DiscoveredRow, MeasurementRow, MeasurementTable, NodeRow, PubsubRow, RegionRow, ReprovideRow,
        SchedulerRow, TableRows,
    },
    schema::{
        nodes_ecs, pubsub_deliveries_ecs, pubsub_publishes_ecs, reprovide_observations_ecs,
        reprovide_regions_ecs, reprovide_rounds_ecs, schedulers_ecs,
    },
    tls, DbError,
};

/// The Postgres migrations, compiled in.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Key of the advisory lock that serialises migrations across processes starting at once.
const MIGRATION_LOCK: i64 = 0x7061_7273_6563; // "parsec"

/// Most rows per INSERT (bounds the statement's memory on both ends).
const ROWS_PER_INSERT: usize = 4096;

/// Pubsub rows per multi-row INSERT: 15 parameters each, under Postgres' 65,535.
const PUBSUB_ROWS_PER_INSERT: usize = 2048;

/// How long a pool checkout may wait for a connection (a database outage fails writes this fast).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections per process: one writer and the heartbeat need few.
const POOL_SIZE: u32 = 8;

/// A pool of connections to a migrated parsec database.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool<AsyncPgConnection>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool.state())
            .finish()
    }
}

impl PgStore {
    /// Migrates the database at `url` (when `migrate`) and opens a pool on it.
    pub async fn connect(url: &str, migrate: bool) -> Result<Self, DbError> {
        if migrate {
            run_migrations(url, Direction::Up).await?;
        }
        let mut setup = ManagerConfig::default();
        setup.custom_setup = Box::new(|url| Box::pin(tls::establish(url)));
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, setup);
        let pool = Pool::builder()
            .max_size(POOL_SIZE)
            .connection_timeout(CONNECTION_TIMEOUT)
            .build(manager)
            .await
            .map_err(|e| DbError::Connect(e.to_string()))?;
        Ok(Self { pool })
    }

    pub(super) async fn connection(
        &self,
    ) -> Result<diesel_async::pooled_connection::bb8::PooledConnection<'_, AsyncPgConnection>, DbError> {
        self.pool.get().await.map_err(|e| DbError::Connect(e.to_string()))
    }

    pub(crate) async fn ping(&self) -> Result<(), DbError> {
        diesel::sql_query("SELECT 1")
            .execute(&mut self.connection().await?)
            .await?;
        Ok(())
    }

    /// Inserts a batch of measurements in one transaction; rows already stored (same
    /// measurement id) are skipped, so a retried batch is stored exactly once.
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
        let mut conn = self.connection().await.map_err(|e| SinkError(e.to_string()))?;
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            for chunk in publishes.chunks(PUBSUB_ROWS_PER_INSERT) {
                let values: Vec<_> = chunk
                    .iter()
                    .map(|row| pubsub_values!(publish, row, std::convert::identity, std::convert::identity))
                    .collect();
                diesel::insert_into(pubsub_publishes_ecs::table)
                    .values(values)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
            }
            for chunk in deliveries.chunks(PUBSUB_ROWS_PER_INSERT) {
                let values: Vec<_> = chunk
                    .iter()
                    .map(|row| pubsub_values!(delivery, row, std::convert::identity, std::convert::identity))
                    .collect();
                diesel::insert_into(pubsub_deliveries_ecs::table)
                    .values(values)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
            }
            // A round before its regions, which refer to it.
            for chunk in reprovides.chunks(PUBSUB_ROWS_PER_INSERT / 2) {
                let values: Vec<_> = chunk
                    .iter()
                    .map(|row| reprovide_values!(round, row, std::convert::identity, std::convert::identity))
                    .collect();
                diesel::insert_into(reprovide_rounds_ecs::table)
                    .values(values)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
                let values: Vec<_> = chunk
                    .iter()
                    .map(|row| reprovide_values!(observation, row, std::convert::identity))
                    .collect();
                diesel::insert_into(reprovide_observations_ecs::table)
                    .values(values)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
            }
            for chunk in regions.chunks(ROWS_PER_INSERT) {
                let values: Vec<_> = chunk
                    .iter()
                    .map(|row| reprovide_values!(region, row, std::convert::identity))
                    .collect();
                diesel::insert_into(reprovide_regions_ecs::table)
                    .values(values)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
            }
            for chunk in provides.chunks(ROWS_PER_INSERT) {
                unnest_insert(MeasurementTable::Provides, chunk)
                    .execute(conn)
                    .await?;
            }
            for chunk in retrievals.chunks(ROWS_PER_INSERT) {
                unnest_insert(MeasurementTable::Retrievals, chunk)
                    .execute(conn)
                    .await?;
            }
            Ok(())
        })
        .await
        .map_err(|e| SinkError(e.to_string()))
    }

    /// Registers `node`: takes over the newest row of the same node (a restart), else inserts
    /// one; earlier rows of its peer id still marked online are marked offline.
    pub(crate) async fn insert_node(&self, node: NodeRow) -> Result<NodeId, DbError> {
        let mut conn = self.connection().await?;
        let id = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                let reusable: Option<i32> =
                    reusable_node_query!(nodes_ecs, &node, |json: &serde_json::Value| json.clone())
                        .first(conn)
                        .await
                        .optional()?;
                let id = match reusable {
                    Some(id) => {
                        reuse_node_row!(nodes_ecs, id, &node, IpNet::from, DateTime<Utc>)
                            .execute(conn)
                            .await?;
                        id
                    }
                    None => {
                        diesel::insert_into(nodes_ecs::table)
                            .values(node_values!(nodes_ecs, &node, |json| json, IpNet::from, |at| at))
                            .returning(nodes_ecs::id)
                            .get_result(conn)
                            .await?
                    }
                };
                retire_earlier_rows!(nodes_ecs, &node, id, node.created_at)
                    .execute(conn)
                    .await?;
                Ok(id)
            })
            .await?;
        Ok(NodeId(i64::from(id)))
    }

    /// Sets one time column of node `id`; returns the rows updated.
    pub(crate) async fn set_node_time(
        &self,
        id: i32,
        column: NodeTime,
        at: DateTime<Utc>,
    ) -> Result<usize, DbError> {
        let mut conn = self.connection().await?;
        let target = diesel::update(nodes_ecs::table.find(id));
        Ok(match column {
            NodeTime::LastHeartbeat => {
                target
                    .set((
                        nodes_ecs::last_heartbeat.eq(at),
                        nodes_ecs::offline_since.eq(offline_unless_older_than!(Timestamptz, at)),
                    ))
                    .execute(&mut conn)
                    .await?
            }
            NodeTime::OfflineSince => {
                target
                    .set(nodes_ecs::offline_since.eq(at))
                    .execute(&mut conn)
                    .await?
            }
        })
    }

    /// The nodes `query` selects, in id order.
    pub(crate) async fn discover_nodes(&self, query: NodeQuery) -> Result<Vec<DiscoveredRow>, DbError> {
        let mut conn = self.connection().await?;
        let rows: Vec<(i32, String, String, IpNet, i32)> =
            discovery_query!(nodes_ecs, &query.fleets, query.heartbeat_since)
                .load(&mut conn)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, fleet, peer_id, ip, port)| (id, fleet, peer_id, ip.addr(), port))
            .collect())
    }

    pub(crate) async fn insert_scheduler(&self, scheduler: SchedulerRow) -> Result<SchedulerId, DbError> {
        let mut conn = self.connection().await?;
        let fleets: Vec<Option<String>> = scheduler.fleets.into_iter().map(Some).collect();
        let id: i32 = diesel::insert_into(schedulers_ecs::table)
            .values((
                schedulers_ecs::fleets.eq(fleets),
                schedulers_ecs::dependencies.eq(&scheduler.dependencies),
                schedulers_ecs::created_at.eq(scheduler.created_at),
            ))
            .returning(schedulers_ecs::id)
            .get_result(&mut conn)
            .await?;
        Ok(SchedulerId(i64::from(id)))
    }
}

/// One INSERT of `rows` into `provides_ecs` or `retrievals_ecs`, which share these columns
/// (provides add `record_peers`), as one array per column unnested server-side: 14 or 15
/// parameters whatever the row count, and one prepared statement per table. Multi-row VALUES made
/// Postgres parse and plan 53,000 parameters per batch; this doubles what the recorder sustains.
fn unnest_insert<'a>(
    table: MeasurementTable,
    rows: &'a [MeasurementRow],
) -> impl diesel_async::methods::ExecuteDsl<AsyncPgConnection> + RunQueryDsl<AsyncPgConnection> + Send + 'a {
    use diesel::sql_types::{Array, Double, Integer, Nullable, Text, Timestamptz, Uuid};
    let (name, extra_column, extra_array) = match table {
        MeasurementTable::Provides => ("provides_ecs", ", record_peers", ", $15::int4[]"),
        MeasurementTable::Retrievals => ("retrievals_ecs", "", ""),
    };
    let query = diesel::sql_query(format!(
        "INSERT INTO {name} (measurement_id, scheduler_id, node_id, rt_size, duration, cid, error, \
         created_at, step, round_id, started_at, probe, trace_id, connections{extra_column}) \
         SELECT * FROM unnest($1::uuid[], $2::int4[], $3::int4[], $4::int4[], $5::float8[], $6::text[], \
         $7::text[], $8::timestamptz[], $9::text[], $10::uuid[], $11::timestamptz[], $12::int4[], \
         $13::text[], $14::text[]{extra_array}) \
         ON CONFLICT DO NOTHING"
    ))
    .into_boxed::<diesel::pg::Pg>()
    .bind::<Array<Uuid>, _>(rows.iter().map(|r| r.measurement_id).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.scheduler_id).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.node_id).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.rt_size).collect::<Vec<_>>())
    .bind::<Array<Double>, _>(rows.iter().map(|r| r.duration).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.cid.clone()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.error.clone()).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.step.clone()).collect::<Vec<_>>())
    .bind::<Array<Uuid>, _>(rows.iter().map(|r| r.round_id).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.started_at).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.probe).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.trace_id.clone()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.connections.clone()).collect::<Vec<_>>());
    match table {
        MeasurementTable::Provides => {
            query.bind::<Array<Nullable<Integer>>, _>(rows.iter().map(|r| r.record_peers).collect::<Vec<_>>())
        }
        MeasurementTable::Retrievals => query,
    }
}

/// The node columns that hold a point in time and change after registration.
#[derive(Clone, Copy, Debug)]
pub(crate) enum NodeTime {
    LastHeartbeat,
    OfflineSince,
}

/// Longest a process waits for another one's migrations (index builds over years of rows take
/// long; past this, run `parsec migrate` on its own).
const MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(30 * 60);

/// Takes the migration lock, trying every 200 ms: a session blocked in `pg_advisory_lock` would
/// hold a snapshot that the holder's `CREATE INDEX CONCURRENTLY` waits for (a deadlock).
async fn wait_for_migration_lock(conn: &mut AsyncPgConnection) -> Result<(), DbError> {
    #[derive(QueryableByName)]
    struct Taken {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        taken: bool,
    }
    let deadline = tokio::time::Instant::now() + MIGRATION_LOCK_WAIT;
    let mut said = false;
    loop {
        let taken: Vec<Taken> = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS taken")
            .bind::<BigInt, _>(MIGRATION_LOCK)
            .load(conn)
            .await?;
        if <[Taken]>::first(&taken).is_some_and(|t| t.taken) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(DbError::Migrate(format!(
                "another process has been migrating the database for {MIGRATION_LOCK_WAIT:?}; \
                 run `parsec migrate` on its own, then start with --no-migrate"
            )));
        }
        if !said {
            tracing::info!("another process is migrating the database; waiting for it");
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Times a migration that gave up a table lock (its `lock_timeout`) is tried again.
const LOCK_RETRIES: u32 = 100;

/// Pause before trying a migration that gave up a lock again.
const LOCK_RETRY_PAUSE: Duration = Duration::from_millis(300);

/// Runs the pending migrations; one that gave up waiting for a table lock (the migrations that
/// alter big tables set a short `lock_timeout`, so inserts never queue long behind them) is
/// rolled back, and tried again after a pause, [`LOCK_RETRIES`] times at most. Returns the
/// versions applied.
async fn run_pending_patiently(
    harness: &mut AsyncMigrationHarness<AsyncPgConnection>,
) -> Result<Vec<String>, DbError> {
    let versions = |harness: &mut AsyncMigrationHarness<AsyncPgConnection>| {
        harness
            .applied_migrations()
            .map(|applied| applied.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(|e| DbError::Migrate(e.to_string()))
    };
    let before = versions(harness).unwrap_or_default();
    for attempt in 1.. {
        match harness.run_pending_migrations(MIGRATIONS) {
            Ok(_) => break,
            Err(e) if attempt <= LOCK_RETRIES && e.to_string().contains("lock timeout") => {
                tracing::info!(attempt, error = %e, "a migration gave up waiting for a table lock; trying again");
                tokio::time::sleep(LOCK_RETRY_PAUSE).await;
            }
            Err(e) => return Err(DbError::Migrate(e.to_string())),
        }
    }
    Ok(versions(harness)?
        .into_iter()
        .filter(|v| !before.contains(v))
        .collect())
}

/// Which way to migrate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Apply every pending migration.
    Up,
    /// Revert every applied migration (tests and `parsec db reset`-style tooling).
    Down,
}

/// Migrates the database at `url`, holding an advisory lock so that processes starting at once
/// migrate one after the other. Returns the migrations it ran.
///
/// diesel's migration harness is synchronous (`block_in_place` inside), so it runs on a
/// private multi-thread runtime whatever runtime the caller is on.
pub async fn run_migrations(url: &str, direction: Direction) -> Result<Vec<String>, DbError> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| DbError::Migrate(e.to_string()))?;
        let task = runtime.spawn(async move {
            let mut conn = tls::establish(&url).await?;
            wait_for_migration_lock(&mut conn).await?;
            let mut harness = AsyncMigrationHarness::new(conn);
            let ran = match direction {
                Direction::Up => run_pending_patiently(&mut harness).await,
                Direction::Down => harness
                    .revert_all_migrations(MIGRATIONS)
                    .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
                    .map_err(|e| DbError::Migrate(e.to_string())),
            };
            let mut conn = harness.into_inner();
            // Closing the connection would release the lock too; unlock explicitly all the same.
            diesel::sql_query("SELECT pg_advisory_unlock($1)")
                .bind::<BigInt, _>(MIGRATION_LOCK)
                .execute(&mut conn)
                .await?;
            ran
        });
        runtime
            .block_on(task)
            .map_err(|e| DbError::Migrate(format!("migration task failed: {e}")))?
    })
    .await
    .map_err(|e| DbError::Migrate(format!("migration task failed: {e}")))?
}
