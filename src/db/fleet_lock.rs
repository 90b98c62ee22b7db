//! One scheduler per fleet: a lock per fleet, held for as long as a scheduler runs. On Postgres
//! it is a session advisory lock on a connection of its own (released when the process or its
//! connection ends, however it ends); on SQLite an exclusive lock on a file beside the database.
//! A second scheduler of the same fleet finds it held, and learns by whom.

use std::{
    fs::{File, TryLockError},
    path::{Path, PathBuf},
};

use diesel::{
    sql_types::{BigInt, Integer, Text},
    QueryableByName,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::{tls, DatabaseTarget, DbError};

/// First half of every fleet lock's key ("pars"); the second is `hashtext(fleet)`.
const LOCK_CLASS: i32 = 0x7061_7273;

/// Locks on the fleets a scheduler measures; dropping it releases them.
pub struct FleetLock {
    fleets: Vec<String>,
    held: Held,
}

enum Held {
    /// The connection whose session holds the advisory locks, and how to open another.
    Postgres {
        conn: Box<AsyncPgConnection>,
        url: String,
    },
    /// The locked files (closing them unlocks).
    Sqlite { _files: Vec<File> },
}

impl std::fmt::Debug for FleetLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetLock")
            .field("fleets", &self.fleets)
            .finish_non_exhaustive()
    }
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockRefused {
    /// Another scheduler measures the fleet.
    #[error("fleet {fleet} is measured by another scheduler ({holder})")]
    Held {
        /// The fleet.
        fleet: String,
        /// Who holds it, as far as the database can tell.
        holder: String,
    },
    /// The database could not be asked.
    #[error(transparent)]
    Database(#[from] DbError),
}

#[derive(QueryableByName)]
struct Taken {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    taken: bool,
}

#[derive(QueryableByName)]
struct Holder {
    #[diesel(sql_type = Text)]
    holder: String,
}

#[derive(QueryableByName)]
struct HeldCount {
    #[diesel(sql_type = BigInt)]
    held: i64,
}

impl FleetLock {
    /// Takes the lock of every fleet in `fleets` on `target`, or none of them.
    pub async fn try_acquire(target: &DatabaseTarget, fleets: &[String]) -> Result<Self, LockRefused> {
        let mut fleets = fleets.to_vec();
        // One order for every scheduler: two that share fleets cannot each hold half.
        fleets.sort();
        fleets.dedup();
        let held = match target {
            DatabaseTarget::Postgres { url } => {
                let mut conn = tls::establish(url).await.map_err(DbError::from)?;
                lock_postgres(&mut conn, &fleets).await?;
                Held::Postgres {
                    conn: Box::new(conn),
                    url: url.clone(),
                }
            }
            DatabaseTarget::Sqlite { path } => Held::Sqlite {
                _files: lock_files(path, &fleets)?,
            },
        };
        Ok(Self { fleets, held })
    }

    /// The fleets it holds.
    pub fn fleets(&self) -> &[String] {
        &self.fleets
    }

    /// Checks that the locks are still held: a Postgres connection that was lost (a database
    /// restart) lost them, so they are taken again, unless another scheduler took them first.
    /// A database that cannot be reached cannot give them to anyone either: `Ok`, checked again
    /// next time.
    pub async fn ensure_held(&mut self) -> Result<(), LockRefused> {
        let Held::Postgres { conn, url } = &mut self.held else {
            return Ok(());
        };
        let held: Result<Vec<HeldCount>, _> = diesel::sql_query(
            "SELECT count(*)::BIGINT AS held FROM pg_locks \
             WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND classid = $1::oid AND granted",
        )
        .bind::<Integer, _>(LOCK_CLASS)
        .load(conn.as_mut())
        .await;
        if let Ok(held) = held {
            if <[HeldCount]>::first(&held).is_some_and(|h| h.held == self.fleets.len() as i64) {
                return Ok(());
            }
        }
        let Ok(mut fresh) = tls::establish(url).await else {
            tracing::warn!(fleets = ?self.fleets, "the database is unreachable: the fleet lock is checked again next round");
            return Ok(());
        };
        lock_postgres(&mut fresh, &self.fleets).await?;
        tracing::warn!(fleets = ?self.fleets, "the fleet lock's connection was lost; the lock is taken again");
        **conn = fresh;
        Ok(())
    }
}

/// Takes every fleet's advisory lock on `conn`, or releases those taken and says who holds the
/// one it could not take.
async fn lock_postgres(conn: &mut AsyncPgConnection, fleets: &[String]) -> Result<(), LockRefused> {
    for (taken_so_far, fleet) in fleets.iter().enumerate() {
        let taken: Vec<Taken> = diesel::sql_query("SELECT pg_try_advisory_lock($1, hashtext($2)) AS taken")
            .bind::<Integer, _>(LOCK_CLASS)
            .bind::<Text, _>(fleet)
            .load(conn)
            .await
            .map_err(DbError::from)?;
        if <[Taken]>::first(&taken).is_some_and(|t| t.taken) {
            continue;
        }
        for fleet in &fleets[..taken_so_far] {
            let _ = diesel::sql_query("SELECT pg_advisory_unlock($1, hashtext($2))")
                .bind::<Integer, _>(LOCK_CLASS)
                .bind::<Text, _>(fleet)
                .execute(conn)
                .await;
        }
        let holder: Vec<Holder> = diesel::sql_query(
            "SELECT format('connection %s from %s, connected since %s', a.pid, \
                    coalesce(host(a.client_addr), 'a local socket'), \
                    to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"')) AS holder \
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::oid \
               AND l.objid = hashtext($2)::oid",
        )
        .bind::<Integer, _>(LOCK_CLASS)
        .bind::<Text, _>(fleet)
        .load(conn)
        .await
        .unwrap_or_default();
        return Err(LockRefused::Held {
            fleet: fleet.clone(),
            holder: holder
                .into_iter()
                .next()
                .map_or_else(|| "its connection has just ended".to_owned(), |h| h.holder),
        });
    }
    Ok(())
}

/// The lock file of `fleet` beside the SQLite file at `database`.
fn lock_path(database: &Path, fleet: &str) -> PathBuf {
    // Any fleet name as a file name: letters, digits, '-' and '_' kept, the rest hex-escaped.
    let safe: String = fleet
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => (b as char).to_string(),
            other => format!("%{other:02x}"),
        })
        .collect();
    let mut name = database.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".scheduler-{safe}.lock"));
    database.with_file_name(name)
}

/// Locks every fleet's file, or none.
fn lock_files(database: &Path, fleets: &[String]) -> Result<Vec<File>, LockRefused> {
    let mut files = Vec::new();
    for fleet in fleets {
        let path = lock_path(database, fleet);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| DbError::Connect(format!("opening the lock file {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => files.push(file),
            Err(TryLockError::WouldBlock) => {
                return Err(LockRefused::Held {
                    fleet: fleet.clone(),
                    holder: format!("a process holds {}", path.display()),
                })
            }
            Err(TryLockError::Error(e)) => {
                return Err(DbError::Connect(format!("locking {}: {e}", path.display())).into())
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fleet_is_locked_once_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let target = DatabaseTarget::Sqlite {
            path: dir.path().join("parsec.sqlite"),
        };
        let fleets = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let first = FleetLock::try_acquire(&target, &fleets(&["default", "opt/prov"]))
            .await
            .unwrap();
        let refused = FleetLock::try_acquire(&target, &fleets(&["fullrt", "opt/prov"]))
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, LockRefused::Held { fleet, .. } if fleet == "opt/prov"),
            "{refused}"
        );
        // All or nothing: fullrt was released when opt/prov was refused.
        let fullrt = FleetLock::try_acquire(&target, &fleets(&["fullrt"]))
            .await
            .unwrap();
        drop(first);
        FleetLock::try_acquire(&target, &fleets(&["opt/prov"]))
            .await
            .unwrap();
        drop(fullrt);
    }
}
