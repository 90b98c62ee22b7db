//! Schema migrations as an operation of their own (`parsec migrate`): which are applied and
//! which pending, read without writing anything, and applied on demand. A process started with
//! `--no-migrate` opens only a database with none pending, so a shared database is upgraded once,
//! by the operator, not by whichever task restarts first.

use std::path::Path;

use diesel::migration::MigrationSource;
use diesel::{
    connection::SimpleConnection as _,
    sql_types::{BigInt, Text},
    QueryableByName,
};

use super::{postgres, sqlite, tls, DatabaseTarget, DbError};

/// What opening a store may do to its schema.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SchemaPolicy {
    /// Apply the pending migrations first (the first process of a deployment creates the tables).
    #[default]
    Migrate,
    /// Apply none; refuse a database with migrations pending (`--no-migrate`).
    Existing,
    /// Apply none and write nothing: a SQLite file is opened read-only (`parsec report`).
    ReadOnly,
}

/// The migrations this build knows, split by whether the database has them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Applied, by name (`2026-11-25-000001_parsec_schema`), oldest first.
    pub applied: Vec<String>,
    /// Not applied yet, by name, in the order they would run.
    pub pending: Vec<String>,
    /// Whether the database has parsec-rs's migration table at all.
    pub initialised: bool,
}

#[derive(QueryableByName)]
struct AppliedVersion {
    #[diesel(sql_type = Text)]
    version: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// `(version, name)` of every migration compiled in for `target`'s kind of database.
fn embedded(target: &DatabaseTarget) -> Result<Vec<(String, String)>, DbError> {
    let names = |migrations: Vec<(String, String)>| Ok(migrations);
    let listing = |e: Box<dyn std::error::Error + Send + Sync>| DbError::Migrate(e.to_string());
    match target {
        DatabaseTarget::Postgres { .. } => names(
            MigrationSource::<diesel::pg::Pg>::migrations(&postgres::MIGRATIONS)
                .map_err(listing)?
                .iter()
                .map(|m| (m.name().version().to_string(), m.name().to_string()))
                .collect(),
        ),
        DatabaseTarget::Sqlite { .. } => names(
            MigrationSource::<diesel::sqlite::Sqlite>::migrations(&sqlite::MIGRATIONS)
                .map_err(listing)?
                .iter()
                .map(|m| (m.name().version().to_string(), m.name().to_string()))
                .collect(),
        ),
    }
}

/// Which migrations `target` has and lacks, read without writing (a SQLite file that does not
/// exist is not created).
pub async fn status(target: &DatabaseTarget) -> Result<MigrationStatus, DbError> {
    let applied = match target {
        DatabaseTarget::Postgres { url } => applied_postgres(url).await?,
        DatabaseTarget::Sqlite { path } => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || applied_sqlite(&path))
                .await
                .map_err(|e| DbError::Query(format!("SQLite task failed: {e}")))??
        }
    };
    let initialised = applied.is_some();
    let applied = applied.unwrap_or_default();
    let (done, pending): (Vec<_>, Vec<_>) = embedded(target)?
        .into_iter()
        .partition(|(version, _)| applied.contains(version));
    Ok(MigrationStatus {
        applied: done.into_iter().map(|(_, name)| name).collect(),
        pending: pending.into_iter().map(|(_, name)| name).collect(),
        initialised,
    })
}

/// Applies the pending migrations of `target`; returns the versions that ran.
pub async fn apply(target: &DatabaseTarget) -> Result<Vec<String>, DbError> {
    match target {
        DatabaseTarget::Postgres { url } => postgres::run_migrations(url, postgres::Direction::Up).await,
        DatabaseTarget::Sqlite { path } => sqlite::migrate(path).await,
    }
}

/// Indexes a concurrent build left invalid (it failed or was interrupted half-way): Postgres
/// keeps them, unused, until rebuilt (`REINDEX INDEX CONCURRENTLY <name>`). SQLite has none.
pub async fn invalid_indexes(target: &DatabaseTarget) -> Result<Vec<String>, DbError> {
    use diesel_async::RunQueryDsl;
    #[derive(QueryableByName)]
    struct Invalid {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let DatabaseTarget::Postgres { url } = target else {
        return Ok(Vec::new());
    };
    let mut conn = tls::establish(url).await?;
    let invalid: Vec<Invalid> = diesel::sql_query(
        "SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE NOT i.indisvalid AND n.nspname = current_schema() ORDER BY 1",
    )
    .load(&mut conn)
    .await?;
    Ok(invalid.into_iter().map(|i| i.name).collect())
}

/// Refuses `target` unless every migration is applied (`policy` other than
/// [`SchemaPolicy::Migrate`]), with the command that fixes it.
pub(super) async fn require_current(target: &DatabaseTarget, policy: SchemaPolicy) -> Result<(), DbError> {
    let status = status(target).await?;
    if !status.initialised {
        return Err(DbError::Config(format!(
            "{target} holds no parsec tables: {}",
            match policy {
                SchemaPolicy::ReadOnly =>
                    "give the store to read with --database-url (or PARSEC_SQLITE_PATH)",
                _ => "create them with `parsec migrate`, or start without --no-migrate",
            }
        )));
    }
    if !status.pending.is_empty() {
        return Err(DbError::Config(format!(
            "{target} lacks {} migration(s) this build needs ({}): run `parsec migrate` against it{}",
            status.pending.len(),
            status.pending.join(", "),
            if policy == SchemaPolicy::Existing {
                ", or start without --no-migrate"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

/// Applied versions, or `None` when the migration table is missing.
async fn applied_postgres(url: &str) -> Result<Option<Vec<String>>, DbError> {
    use diesel_async::RunQueryDsl;
    let mut conn = tls::establish(url).await?;
    let present: Vec<Count> = diesel::sql_query(
        "SELECT count(*)::BIGINT AS count FROM pg_tables WHERE tablename = '__diesel_schema_migrations' \
         AND schemaname = current_schema()",
    )
    .load(&mut conn)
    .await?;
    if <[Count]>::first(&present).is_none_or(|c| c.count == 0) {
        return Ok(None);
    }
    let versions: Vec<AppliedVersion> = diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
        .load(&mut conn)
        .await?;
    Ok(Some(versions.into_iter().map(|v| v.version).collect()))
}

/// Applied versions of a SQLite file opened read-only, or `None` when the file or its
/// migration table is missing.
fn applied_sqlite(path: &Path) -> Result<Option<Vec<String>>, DbError> {
    use diesel::RunQueryDsl;
    if !path.exists() {
        return Ok(None);
    }
    let mut conn = sqlite::establish_read_only(path)?;
    conn.batch_execute("PRAGMA busy_timeout = 5000;")?;
    let present: Vec<Count> = diesel::sql_query(
        "SELECT count(*) AS count FROM sqlite_master WHERE type = 'table' AND name = '__diesel_schema_migrations'",
    )
    .load(&mut conn)?;
    if <[Count]>::first(&present).is_none_or(|c| c.count == 0) {
        return Ok(None);
    }
    let versions: Vec<AppliedVersion> =
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations").load(&mut conn)?;
    Ok(Some(versions.into_iter().map(|v| v.version).collect()))
}
