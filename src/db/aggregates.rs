//! The report's reads: attempts, successes and the distribution of the successful durations per
//! group of measurements, computed where the rows are: Postgres' `percentile_cont`, or, in
//! SQLite (which has no percentile function), one pass over the durations in sorted order. No
//! backend holds the rows in memory.

use chrono::{DateTime, Utc};
use diesel::{
    connection::DefaultLoadingMode,
    pg::Pg,
    prelude::*,
    query_builder::{BoxedSqlQuery, SqlQuery},
    sql_types::{Array, BigInt, Double, Integer, Nullable, Text, Timestamp, Timestamptz},
    sqlite::Sqlite,
};
use indicatif::ProgressBar;
use parsec_actors::Operation;
use serde::Serialize;

use super::{DbError, Dialect, Store};

/// Quantiles kept per group: every percent of the successful durations, 0 % (fastest) to
/// 100 % (slowest), as Postgres' `percentile_cont` gives them (linear interpolation between
/// the two nearest rows).
pub const QUANTILES: usize = 101;

/// Which measurements a report reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportFilter {
    /// Fleets of the measuring servers (all when empty).
    pub fleets: Vec<String>,
    /// Regions of the measuring servers (all when empty).
    pub regions: Vec<String>,
    /// Steps, as parsec names them (all when empty).
    pub steps: Vec<String>,
    /// One scheduler's rows (one run of `parsec testnet` or `parsec simulate`).
    pub scheduler: Option<i32>,
    /// Rows created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Rows created before this time.
    pub until: Option<DateTime<Utc>>,
    /// Rows whose server's routing table held at least this many peers (ProbeLab reports only
    /// nodes with a populated routing table).
    pub min_rt_size: Option<i32>,
}

impl ReportFilter {
    /// Whether pubsub rows can be selected: they have no step and no routing-table size, so a
    /// filter on either selects DHT rows only.
    pub fn covers_pubsub(&self) -> bool {
        self.steps.is_empty() && self.min_rt_size.is_none()
    }
}

/// What a group of measurements shares besides its fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Grouping {
    /// The measuring server's region.
    Region,
    /// The UTC day the measurement finished (`2026-12-04`).
    Day,
    /// The UTC hour the measurement finished (`2026-12-04T13:00`).
    Hour,
    /// The receiver's libp2p implementation (pubsub deliveries only).
    Implementation,
}

/// Attempts, successes and the distribution of successful durations of one group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupStats {
    /// The fleet of the measuring servers.
    pub fleet: String,
    /// The region, day or hour (see [`Grouping`]).
    pub key: String,
    /// Measurements.
    pub attempts: u64,
    /// Measurements without error.
    pub successes: u64,
    /// [`QUANTILES`] quantiles of the successful durations in seconds, fastest first (empty
    /// without successes).
    pub quantiles: Vec<f64>,
    /// Pubsub deliveries: copies beyond the first per delivered message, on average.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicates: Option<f64>,
    /// Pubsub deliveries: the share of delivered first copies that came straight from the
    /// publisher (one hop), over those whose forwarder is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_hop: Option<f64>,
    /// Pubsub deliveries across processes: the mean bound of the clock offset's error (seconds)
    /// that each latency carries; `None` when publisher and receivers share a clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_uncertainty: Option<f64>,
}

impl GroupStats {
    /// Share of attempts without error, 0..=1.
    pub fn success_rate(&self) -> f64 {
        if self.attempts == 0 {
            0.0
        } else {
            self.successes as f64 / self.attempts as f64
        }
    }

    /// The key as a report shows it: servers without a region (a local testnet) say so.
    pub fn key_label(&self) -> &str {
        if self.key.is_empty() {
            "(none)"
        } else {
            &self.key
        }
    }

    /// The `percent`th percentile of the successful durations in seconds.
    pub fn percentile(&self, percent: usize) -> Option<f64> {
        self.quantiles.get(percent).copied()
    }
}

/// Reprovide rounds of one strategy at one CID count. Figures pool the rounds without error:
/// CIDs per hour of their summed round time, lookups and copies per CID, the share of sampled
/// CIDs found (`None` without such rounds).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReprovideStats {
    pub strategy: String,
    pub cids: u64,
    pub rounds: u64,
    pub successes: u64,
    pub cids_per_hour: Option<f64>,
    pub lookups_per_cid: Option<f64>,
    pub copies_per_cid: Option<f64>,
    pub found: Option<f64>,
}

#[derive(QueryableByName)]
struct ReprovideGroupRow {
    #[diesel(sql_type = Text)]
    strategy: String,
    #[diesel(sql_type = BigInt)]
    cids: i64,
    #[diesel(sql_type = BigInt)]
    rounds: i64,
    #[diesel(sql_type = BigInt)]
    successes: i64,
    #[diesel(sql_type = Nullable<Double>)]
    seconds: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    lookups: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    copies: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    found: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    sampled: Option<f64>,
}

impl ReprovideGroupRow {
    fn stats(self) -> ReprovideStats {
        let successes = u64::try_from(self.successes).unwrap_or(0);
        let cids = u64::try_from(self.cids).unwrap_or(0);
        // The CIDs of the rounds the figures pool.
        let pooled = (successes * cids) as f64;
        let per_cid = |total: Option<f64>| total.filter(|_| pooled > 0.0).map(|t| t / pooled);
        ReprovideStats {
            strategy: self.strategy,
            cids,
            rounds: u64::try_from(self.rounds).unwrap_or(0),
            successes,
            cids_per_hour: self
                .seconds
                .filter(|&s| s > 0.0 && pooled > 0.0)
                .map(|s| pooled / s * 3600.0),
            lookups_per_cid: per_cid(self.lookups),
            copies_per_cid: per_cid(self.copies),
            found: self
                .found
                .zip(self.sampled)
                .filter(|&(_, sampled)| sampled > 0.0)
                .map(|(found, sampled)| found / sampled),
        }
    }
}

/// How often one error text occurred.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorCount {
    /// The fleet of the measuring servers.
    pub fleet: String,
    /// The error text.
    pub error: String,
    /// Occurrences.
    pub count: u64,
}

/// Most error texts a report lists per operation.
const ERROR_TEXTS: i64 = 10;

impl Store {
    /// Per fleet and `grouping`, the attempts, successes and quantiles of `operation`'s rows that
    /// `filter` selects, sorted by fleet and key. `progress` counts the rows read where they are
    /// streamed.
    pub async fn group_stats(
        &self,
        operation: Operation,
        grouping: Grouping,
        filter: &ReportFilter,
        progress: &ProgressBar,
    ) -> Result<Vec<GroupStats>, DbError> {
        let mut groups = match self {
            Store::Postgres(pg) => {
                let query = Select::new(Dialect::Postgres, operation, filter);
                let mut conn = pg.connection().await?;
                progress.set_message(format!("{} percentiles in Postgres", operation.step()));
                let rows: Vec<PgGroupRow> =
                    diesel_async::RunQueryDsl::load(query.pg_groups(grouping), &mut conn).await?;
                rows.into_iter().map(PgGroupRow::stats).collect()
            }
            Store::Sqlite(sqlite) => {
                let query = Select::new(Dialect::Sqlite, operation, filter);
                let progress = progress.clone();
                sqlite
                    .with_connection(move |conn| {
                        // One read transaction: both passes see the same rows while a recorder
                        // goes on writing.
                        conn.transaction(|conn| query.sqlite_groups(conn, grouping, &progress))
                    })
                    .await?
            }
        };
        groups.sort_by(|a, b| (&a.fleet, &a.key).cmp(&(&b.fleet, &b.key)));
        Ok(groups)
    }

    /// Reprovide rounds that `filter` selects, per strategy and CID count.
    pub async fn reprovide_stats(&self, filter: &ReportFilter) -> Result<Vec<ReprovideStats>, DbError> {
        let rows: Vec<ReprovideGroupRow> = match self {
            Store::Postgres(pg) => {
                let query = Select::new(Dialect::Postgres, Operation::Reprovide, filter);
                let mut conn = pg.connection().await?;
                diesel_async::RunQueryDsl::load(query.pg(query.reprovide_groups()), &mut conn).await?
            }
            Store::Sqlite(sqlite) => {
                let query = Select::new(Dialect::Sqlite, Operation::Reprovide, filter);
                sqlite
                    .with_connection(move |conn| Ok(query.sqlite(query.reprovide_groups()).load(conn)?))
                    .await?
            }
        };
        Ok(rows.into_iter().map(ReprovideGroupRow::stats).collect())
    }

    /// The most frequent error texts of `operation`'s rows that `filter` selects, most frequent
    /// first.
    pub async fn error_counts(
        &self,
        operation: Operation,
        filter: &ReportFilter,
    ) -> Result<Vec<ErrorCount>, DbError> {
        let rows: Vec<ErrorRow> = match self {
            Store::Postgres(pg) => {
                let query = Select::new(Dialect::Postgres, operation, filter);
                let mut conn = pg.connection().await?;
                diesel_async::RunQueryDsl::load(query.pg(query.errors()), &mut conn).await?
            }
            Store::Sqlite(sqlite) => {
                let query = Select::new(Dialect::Sqlite, operation, filter);
                sqlite
                    .with_connection(move |conn| Ok(query.sqlite(query.errors()).load(conn)?))
                    .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(|row| ErrorCount {
                fleet: row.fleet,
                error: row.error,
                count: u64::try_from(row.count).unwrap_or(0),
            })
            .collect())
    }
}

impl Dialect {
    /// The SQL of a group's key; `time` is the rows' time column.
    fn key(self, grouping: Grouping, time: &str) -> String {
        match (self, grouping) {
            (_, Grouping::Region) => "n.region".to_owned(),
            (_, Grouping::Implementation) => "m.implementation".to_owned(),
            (Dialect::Postgres, Grouping::Day) => format!("to_char({time} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"),
            (Dialect::Postgres, Grouping::Hour) => {
                format!(r#"to_char({time} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24":00"')"#)
            }
            // SQLite keeps our timestamps as UTC text.
            (Dialect::Sqlite, Grouping::Day) => format!("strftime('%Y-%m-%d', {time})"),
            (Dialect::Sqlite, Grouping::Hour) => format!("strftime('%Y-%m-%dT%H:00', {time})"),
        }
    }
}

/// A value bound to a placeholder of the filter.
#[derive(Clone, Debug)]
enum Bind {
    Text(String),
    Int(i32),
    Time(DateTime<Utc>),
}

/// The rows of one operation that a filter selects, joined to their servers (`m` and `n`), as
/// SQL text with bind values.
#[derive(Clone, Debug)]
struct Select {
    dialect: Dialect,
    operation: Operation,
    from_where: String,
    binds: Vec<Bind>,
}

impl Select {
    fn new(dialect: Dialect, operation: Operation, filter: &ReportFilter) -> Self {
        let table = match operation {
            Operation::Provide => "provides_ecs",
            Operation::Retrieval => "retrievals_ecs",
            Operation::Publish => "pubsub_publishes_ecs",
            Operation::Delivery => "pubsub_deliveries_ecs",
            Operation::Reprovide => "reprovide_rounds_ecs",
        };
        let mut select = Select {
            dialect,
            operation,
            from_where: format!(
                "FROM {table} m JOIN nodes_ecs n ON n.id = m.node_id{} WHERE 1 = 1",
                if operation == Operation::Delivery {
                    // The publisher of each delivered message: a first copy from it came in one hop.
                    " LEFT JOIN pubsub_publishes_ecs p ON p.round_id = m.round_id AND p.message_id = m.message_id \
                     LEFT JOIN nodes_ecs publisher ON publisher.id = p.node_id"
                } else {
                    ""
                }
            ),
            binds: Vec::new(),
        };
        select.any_of("n.fleet", &filter.fleets);
        select.any_of("n.region", &filter.regions);
        if let Some(scheduler) = filter.scheduler {
            select.condition("m.scheduler_id =", Bind::Int(scheduler));
        }
        let time = select.time_column();
        if let Some(since) = filter.since {
            select.condition(&format!("{time} >="), Bind::Time(since));
        }
        if let Some(until) = filter.until {
            select.condition(&format!("{time} <"), Bind::Time(until));
        }
        if !select.is_dht() {
            if !filter.covers_pubsub() {
                // No step and no routing-table size: such a filter selects none of these rows.
                select.from_where += " AND 1 = 0";
            }
        } else {
            select.any_of("m.step", &filter.steps);
            if let Some(min) = filter.min_rt_size {
                select.condition("m.rt_size >=", Bind::Int(min));
            }
        }
        select
    }

    /// Whether the rows are parsec's provides and retrievals (with a step and a routing-table
    /// size).
    fn is_dht(&self) -> bool {
        matches!(self.operation, Operation::Provide | Operation::Retrieval)
    }

    /// When a row happened: parsec's rows are written when the operation ended; a pubsub row
    /// carries the publisher's send, a reprovide round its start.
    fn time_column(&self) -> &'static str {
        if self.is_dht() {
            "m.created_at"
        } else {
            "m.started_at"
        }
    }

    /// Reprovide rounds per strategy and CID count: rounds, those without error, and over
    /// those, CIDs per hour of round time and lookups, copies and findability per CID.
    fn reprovide_groups(&self) -> String {
        format!(
            "SELECT m.strategy AS strategy, m.cids AS cids, count(*) AS rounds, \
             CAST(coalesce(sum(CASE WHEN m.error IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS successes, \
             CAST(sum(CASE WHEN m.error IS NULL THEN m.duration END) AS DOUBLE PRECISION) AS seconds, \
             CAST(sum(CASE WHEN m.error IS NULL THEN m.lookups END) AS DOUBLE PRECISION) AS lookups, \
             CAST(sum(CASE WHEN m.error IS NULL THEN m.copies_stored END) AS DOUBLE PRECISION) AS copies, \
             CAST(sum(CASE WHEN m.error IS NULL THEN o.found END) AS DOUBLE PRECISION) AS found, \
             CAST(sum(CASE WHEN m.error IS NULL THEN o.sampled END) AS DOUBLE PRECISION) AS sampled \
             {} GROUP BY 1, 2 ORDER BY 1, 2",
            self.from_where.replacen(
                " WHERE",
                " JOIN reprovide_observations_ecs o ON o.round_measurement_id = m.measurement_id WHERE",
                1
            )
        )
    }

    /// The columns of a group's pubsub figures (NULL for other operations): mean duplicates per
    /// delivered copy, and the mean clock uncertainty.
    fn pubsub_figures(&self) -> &'static str {
        debug_assert!(
            self.operation != Operation::Reprovide,
            "reprovide rounds have no groups"
        );
        match (self.operation, self.dialect) {
            (Operation::Delivery, Dialect::Postgres) => {
                "avg(m.copies - 1) FILTER (WHERE m.error IS NULL)::float8 AS duplicates, \
                 avg(CASE WHEN m.first_from IS NULL THEN NULL WHEN m.first_from = publisher.peer_id \
                 THEN 1.0 ELSE 0.0 END) FILTER (WHERE m.error IS NULL)::float8 AS one_hop, \
                 avg(m.clock_uncertainty)::float8 AS clock_uncertainty"
            }
            (Operation::Delivery, Dialect::Sqlite) => {
                "avg(CASE WHEN m.error IS NULL THEN m.copies - 1 END) AS duplicates, \
                 avg(CASE WHEN m.error IS NOT NULL OR m.first_from IS NULL THEN NULL \
                 WHEN m.first_from = publisher.peer_id THEN 1.0 ELSE 0.0 END) AS one_hop, \
                 avg(m.clock_uncertainty) AS clock_uncertainty"
            }
            (_, Dialect::Postgres) => {
                "NULL::float8 AS duplicates, NULL::float8 AS one_hop, NULL::float8 AS clock_uncertainty"
            }
            (_, Dialect::Sqlite) => "NULL AS duplicates, NULL AS one_hop, NULL AS clock_uncertainty",
        }
    }

    fn next_placeholder(&mut self, bind: Bind) -> String {
        self.binds.push(bind);
        self.dialect.placeholder(self.binds.len())
    }

    fn condition(&mut self, left: &str, bind: Bind) {
        let placeholder = self.next_placeholder(bind);
        self.from_where += &format!(" AND {left} {placeholder}");
    }

    fn any_of(&mut self, column: &str, values: &[String]) {
        if values.is_empty() {
            return;
        }
        let placeholders: Vec<String> = values
            .iter()
            .map(|value| self.next_placeholder(Bind::Text(value.clone())))
            .collect();
        self.from_where += &format!(" AND {column} IN ({})", placeholders.join(", "));
    }

    fn errors(&self) -> String {
        format!(
            "SELECT n.fleet AS fleet, m.error AS error, count(*) AS count {} AND m.error IS NOT NULL \
             GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT {ERROR_TEXTS}",
            self.from_where
        )
    }

    fn pg(&self, sql: String) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
        let mut query = diesel::sql_query(sql).into_boxed::<Pg>();
        for bind in &self.binds {
            query = match bind.clone() {
                Bind::Text(text) => query.bind::<Text, _>(text),
                Bind::Int(int) => query.bind::<Integer, _>(int),
                Bind::Time(at) => query.bind::<Timestamptz, _>(at),
            };
        }
        query
    }

    fn sqlite(&self, sql: String) -> BoxedSqlQuery<'static, Sqlite, SqlQuery> {
        let mut query = diesel::sql_query(sql).into_boxed::<Sqlite>();
        for bind in &self.binds {
            query = match bind.clone() {
                Bind::Text(text) => query.bind::<Text, _>(text),
                Bind::Int(int) => query.bind::<Integer, _>(int),
                Bind::Time(at) => query.bind::<Timestamp, _>(at.naive_utc()),
            };
        }
        query
    }

    /// Postgres computes every group's quantiles in one statement.
    fn pg_groups(&self, grouping: Grouping) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
        let fractions: Vec<String> = (0..QUANTILES).map(|k| format!("{}", k as f64 / 100.0)).collect();
        self.pg(format!(
            "SELECT n.fleet AS fleet, {key} AS key, count(*) AS attempts, \
             count(*) FILTER (WHERE m.error IS NULL) AS successes, \
             percentile_cont(ARRAY[{fractions}]::float8[]) WITHIN GROUP (ORDER BY m.duration) \
             FILTER (WHERE m.error IS NULL) AS quantiles, {figures} \
             {from_where} GROUP BY 1, 2",
            key = self.dialect.key(grouping, self.time_column()),
            fractions = fractions.join(","),
            figures = self.pubsub_figures(),
            from_where = self.from_where,
        ))
    }

    /// SQLite: the groups' counts, then the successful durations in group and duration order,
    /// from which each group's quantiles are picked as they pass.
    fn sqlite_groups(
        &self,
        conn: &mut SqliteConnection,
        grouping: Grouping,
        progress: &ProgressBar,
    ) -> Result<Vec<GroupStats>, DbError> {
        let key = self.dialect.key(grouping, self.time_column());
        let counts: Vec<GroupCounts> = self
            .sqlite(format!(
                "SELECT n.fleet AS fleet, {key} AS key, count(*) AS attempts, \
                 coalesce(sum(m.error IS NULL), 0) AS successes, {} {} GROUP BY 1, 2",
                self.pubsub_figures(),
                self.from_where
            ))
            .load(conn)?;
        let mut groups: std::collections::BTreeMap<(String, String), (GroupStats, QuantilePicker)> = counts
            .into_iter()
            .map(|count| {
                let group = (count.fleet.clone(), count.key.clone());
                let stats = count.stats(Vec::new());
                let picker = QuantilePicker::new(stats.successes);
                (group, (stats, picker))
            })
            .collect();
        progress.set_length(groups.values().map(|(stats, _)| stats.successes).sum());
        progress.set_message(format!("{key} durations"));

        let durations = self.sqlite(format!(
            "SELECT n.fleet AS fleet, {key} AS key, m.duration AS duration {} AND m.error IS NULL \
             ORDER BY 1, 2, 3",
            self.from_where
        ));
        let mut current: Option<(String, String)> = None;
        let mut read = 0u64;
        for row in durations.load_iter::<SqliteDuration, DefaultLoadingMode>(conn)? {
            let row = row?;
            if current.as_ref() != Some(&(row.fleet.clone(), row.key.clone())) {
                current = Some((row.fleet.clone(), row.key.clone()));
            }
            let group = current
                .as_ref()
                .and_then(|key| groups.get_mut(key))
                .ok_or_else(|| {
                    DbError::Query(format!(
                        "group {}/{} changed while it was read",
                        row.fleet, row.key
                    ))
                })?;
            group.1.push(row.duration);
            read += 1;
            if read.is_multiple_of(65_536) {
                progress.inc(65_536);
            }
        }
        progress.inc(read % 65_536);
        groups
            .into_values()
            .map(|(mut stats, picker)| {
                stats.quantiles = picker.finish().ok_or_else(|| {
                    DbError::Query(format!(
                        "{}/{}: fewer durations than counted ({} successes)",
                        stats.fleet, stats.key, stats.successes
                    ))
                })?;
                Ok(stats)
            })
            .collect()
    }
}

/// Picks the [`QUANTILES`] quantiles of `n` values that arrive in ascending order, as
/// `percentile_cont` defines them: the quantile q lies at position q·(n−1), interpolated
/// linearly between the values on either side.
#[derive(Debug)]
struct QuantilePicker {
    n: u64,
    seen: u64,
    previous: f64,
    picked: Vec<f64>,
}

impl QuantilePicker {
    fn new(n: u64) -> Self {
        Self {
            n,
            seen: 0,
            previous: 0.0,
            picked: Vec::with_capacity(if n == 0 { 0 } else { QUANTILES }),
        }
    }

    fn push(&mut self, value: f64) {
        let index = self.seen;
        self.seen += 1;
        while self.picked.len() < QUANTILES && self.n > 0 {
            let fraction = self.picked.len() as f64 / 100.0;
            let position = fraction * (self.n - 1) as f64;
            let below = position.floor();
            let weight = position - below;
            let below = below as u64;
            if below == index && weight == 0.0 {
                self.picked.push(value);
            } else if below + 1 == index {
                self.picked.push(self.previous + (value - self.previous) * weight);
            } else {
                break;
            }
        }
        self.previous = value;
    }

    /// The quantiles, or `None` when fewer values came than announced.
    fn finish(self) -> Option<Vec<f64>> {
        match self.n {
            0 => Some(Vec::new()),
            _ if self.seen == self.n && self.picked.len() == QUANTILES => Some(self.picked),
            _ => None,
        }
    }
}

/// What both backends' group queries read besides the quantiles.
#[derive(QueryableByName)]
struct GroupCounts {
    #[diesel(sql_type = Text)]
    fleet: String,
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = BigInt)]
    attempts: i64,
    #[diesel(sql_type = BigInt)]
    successes: i64,
    #[diesel(sql_type = Nullable<Double>)]
    duplicates: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    one_hop: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    clock_uncertainty: Option<f64>,
}

impl GroupCounts {
    fn stats(self, quantiles: Vec<f64>) -> GroupStats {
        GroupStats {
            fleet: self.fleet,
            key: self.key,
            attempts: u64::try_from(self.attempts).unwrap_or(0),
            successes: u64::try_from(self.successes).unwrap_or(0),
            quantiles,
            duplicates: self.duplicates,
            one_hop: self.one_hop,
            clock_uncertainty: self.clock_uncertainty,
        }
    }
}

/// Postgres reads a group's quantiles in the same row.
#[derive(QueryableByName)]
struct PgGroupRow {
    #[diesel(embed)]
    counts: GroupCounts,
    #[diesel(sql_type = Nullable<Array<Double>>)]
    quantiles: Option<Vec<f64>>,
}

impl PgGroupRow {
    fn stats(self) -> GroupStats {
        self.counts.stats(self.quantiles.unwrap_or_default())
    }
}

#[derive(QueryableByName)]
struct SqliteDuration {
    #[diesel(sql_type = Text)]
    fleet: String,
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Double)]
    duration: f64,
}

#[derive(QueryableByName)]
struct ErrorRow {
    #[diesel(sql_type = Text)]
    fleet: String,
    #[diesel(sql_type = Text)]
    error: String,
    #[diesel(sql_type = BigInt)]
    count: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `percentile_cont` by its definition, on values in memory.
    fn percentile_cont(sorted: &[f64], fraction: f64) -> f64 {
        let position = fraction * (sorted.len() - 1) as f64;
        let below = position.floor() as usize;
        let weight = position - below as f64;
        match sorted.get(below + 1) {
            Some(above) if weight > 0.0 => sorted[below] + (above - sorted[below]) * weight,
            _ => sorted[below],
        }
    }

    #[test]
    fn picker_matches_percentile_cont_at_every_size() {
        for n in [1usize, 2, 3, 7, 99, 100, 101, 102, 1000, 1003] {
            let values: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1013) as f64 / 10.0).collect();
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let mut picker = QuantilePicker::new(n as u64);
            sorted.iter().for_each(|&v| picker.push(v));
            let picked = picker.finish().expect("all values came");
            for (k, got) in picked.iter().enumerate() {
                assert_eq!(*got, percentile_cont(&sorted, k as f64 / 100.0), "n={n} k={k}");
            }
        }
    }

    #[test]
    fn picker_refuses_a_short_stream() {
        let mut picker = QuantilePicker::new(3);
        picker.push(1.0);
        assert_eq!(picker.finish(), None);
        assert_eq!(QuantilePicker::new(0).finish(), Some(Vec::new()));
    }
}
