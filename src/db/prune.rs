//! Retention: deleting the rows older than a cutoff, in bounded batches, on either store.
//!
//! Measurement rows go by their own time (`created_at` of provides and retrievals, `started_at`
//! of pubsub rows). A `nodes_ecs` row goes when the node was last seen (offline since, else its
//! last heartbeat, else its registration) before the cutoff and none of its measurements is
//! newer; a `schedulers_ecs` row when it was created before the cutoff and none of its
//! measurements is newer. Every batch is one statement that commits on its own, so writers keep
//! writing meanwhile and an interrupted prune keeps what it did.

use chrono::{DateTime, Utc};
use diesel::{sql_types::BigInt, QueryableByName};

use super::{DbError, Dialect, Store};

/// The tables a prune deletes from, in the order it does: measurements before the nodes and
/// schedulers they name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrunedTable {
    Provides,
    Retrievals,
    Publishes,
    Deliveries,
    Nodes,
    Schedulers,
}

impl PrunedTable {
    /// Every table, in pruning order.
    pub const ALL: [PrunedTable; 6] = [
        PrunedTable::Provides,
        PrunedTable::Retrievals,
        PrunedTable::Publishes,
        PrunedTable::Deliveries,
        PrunedTable::Nodes,
        PrunedTable::Schedulers,
    ];

    /// The table's name.
    pub fn name(self) -> &'static str {
        match self {
            PrunedTable::Provides => "provides_ecs",
            PrunedTable::Retrievals => "retrievals_ecs",
            PrunedTable::Publishes => "pubsub_publishes_ecs",
            PrunedTable::Deliveries => "pubsub_deliveries_ecs",
            PrunedTable::Nodes => "nodes_ecs",
            PrunedTable::Schedulers => "schedulers_ecs",
        }
    }

    /// The column that dates a measurement table's rows (`None`: not a measurement table).
    fn dated_by(self) -> Option<&'static str> {
        match self {
            PrunedTable::Provides | PrunedTable::Retrievals => Some("created_at"),
            PrunedTable::Publishes | PrunedTable::Deliveries => Some("started_at"),
            PrunedTable::Nodes | PrunedTable::Schedulers => None,
        }
    }

    /// The SQL condition that selects this table's prunable rows, the cutoff being bind
    /// parameter 1.
    fn condition(self, dialect: Dialect) -> String {
        let cutoff = dialect.placeholder(1);
        let none_newer = |owner: &str| {
            Self::ALL
                .iter()
                .filter_map(|table| table.dated_by().map(|time| (table.name(), time)))
                .map(|(table, time)| {
                    format!(
                        "NOT EXISTS (SELECT 1 FROM {table} m WHERE m.{owner} = {}.id AND m.{time} >= {cutoff})",
                        self.name()
                    )
                })
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        match (self, self.dated_by()) {
            (_, Some(time)) => format!("{time} < {cutoff}"),
            (PrunedTable::Nodes, None) => format!(
                "COALESCE(offline_since, last_heartbeat, created_at) < {cutoff} AND {}",
                none_newer("node_id")
            ),
            (_, None) => format!("created_at < {cutoff} AND {}", none_newer("scheduler_id")),
        }
    }

    fn count_statement(self, dialect: Dialect) -> String {
        format!(
            "SELECT count(*) AS count FROM {} WHERE {}",
            self.name(),
            self.condition(dialect)
        )
    }

    fn delete_statement(self, dialect: Dialect, batch_rows: u32) -> String {
        let table = self.name();
        format!(
            "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {} LIMIT {batch_rows})",
            self.condition(dialect)
        )
    }
}

/// What to prune.
#[derive(Clone, Copy, Debug)]
pub struct PruneRequest {
    /// Rows older than this go.
    pub cutoff: DateTime<Utc>,
    /// The most rows one statement deletes (and so locks, and writes to the log, at once).
    pub batch_rows: u32,
    /// Count what would go; delete nothing.
    pub dry_run: bool,
}

/// The rows of one table that went (or would go).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TablePruned {
    pub table: PrunedTable,
    pub rows: u64,
    /// Statements run (0 in a dry run).
    pub batches: u64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

impl Store {
    /// Deletes (or, in a dry run, counts) the rows `request` selects, table after table in
    /// [`PrunedTable::ALL`]'s order; `on_batch` hears of every batch deleted. A dry run counts
    /// the nodes and schedulers that would be left without measurements once the older rows
    /// went, which is what the deleting run then finds.
    pub async fn prune(
        &self,
        request: PruneRequest,
        mut on_batch: impl FnMut(PrunedTable, u64),
    ) -> Result<Vec<TablePruned>, DbError> {
        if request.batch_rows == 0 {
            return Err(DbError::Config(
                "a prune batch must hold at least one row".to_owned(),
            ));
        }
        let mut pruned = Vec::with_capacity(PrunedTable::ALL.len());
        for table in PrunedTable::ALL {
            let mut done = TablePruned {
                table,
                rows: 0,
                batches: 0,
            };
            if request.dry_run {
                done.rows = self.count_prunable(table, request.cutoff).await?;
            } else {
                // Bounded: every batch deletes at least one row of a finite table, or ends it.
                loop {
                    let deleted = self.delete_batch(table, request).await?;
                    if deleted == 0 {
                        break;
                    }
                    done.rows += deleted;
                    done.batches += 1;
                    on_batch(table, deleted);
                }
            }
            pruned.push(done);
        }
        Ok(pruned)
    }

    async fn count_prunable(&self, table: PrunedTable, cutoff: DateTime<Utc>) -> Result<u64, DbError> {
        use diesel::sql_types::{Timestamp, Timestamptz};
        let count: Count = match self {
            Store::Postgres(pg) => {
                let query = diesel::sql_query(table.count_statement(Dialect::Postgres))
                    .bind::<Timestamptz, _>(cutoff);
                diesel_async::RunQueryDsl::get_result(query, &mut pg.connection().await?).await?
            }
            Store::Sqlite(sqlite) => {
                sqlite
                    .with_connection(move |conn| {
                        let query = diesel::sql_query(table.count_statement(Dialect::Sqlite))
                            .bind::<Timestamp, _>(cutoff.naive_utc());
                        Ok(diesel::RunQueryDsl::get_result(query, conn)?)
                    })
                    .await?
            }
        };
        Ok(u64::try_from(count.count).unwrap_or(0))
    }

    async fn delete_batch(&self, table: PrunedTable, request: PruneRequest) -> Result<u64, DbError> {
        use diesel::sql_types::{Timestamp, Timestamptz};
        let deleted = match self {
            Store::Postgres(pg) => {
                let statement =
                    diesel::sql_query(table.delete_statement(Dialect::Postgres, request.batch_rows))
                        .bind::<Timestamptz, _>(request.cutoff);
                diesel_async::RunQueryDsl::execute(statement, &mut pg.connection().await?).await?
            }
            Store::Sqlite(sqlite) => {
                sqlite
                    .with_connection(move |conn| {
                        let statement =
                            diesel::sql_query(table.delete_statement(Dialect::Sqlite, request.batch_rows))
                                .bind::<Timestamp, _>(request.cutoff.naive_utc());
                        Ok(diesel::RunQueryDsl::execute(statement, conn)?)
                    })
                    .await?
            }
        };
        Ok(deleted as u64)
    }
}
