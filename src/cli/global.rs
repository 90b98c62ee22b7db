//! parsec's global flags: the database, the metrics endpoint, logging and dry runs. They go
//! before or after the command, as in parsec.

use std::path::PathBuf;

use clap::Args;

use crate::{
    db::{DatabaseSettings, DatabaseTarget, DbError, SchemaPolicy},
    telemetry::metrics::MetricsEndpoint,
};

/// Where to store data. Postgres when `--database-url`/`DATABASE_URL` or
/// `PARSEC_DATABASE_HOST` is set; otherwise the embedded SQLite file. Global flags, as in
/// parsec: they go before or after the command, and parsec's `--db-*` names work too.
#[derive(Clone, Debug, Args)]
pub struct DatabaseArgs {
    /// Database URL: postgres://user:password@host:port/name, or sqlite://path/to/file.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Postgres host (parsec's variable); setting it selects Postgres.
    #[arg(long, global = true, alias = "db-host", env = "PARSEC_DATABASE_HOST")]
    database_host: Option<String>,
    /// Postgres port.
    #[arg(
        long,
        global = true,
        alias = "db-port",
        env = "PARSEC_DATABASE_PORT",
        default_value_t = 5432
    )]
    database_port: u16,
    /// Postgres database name.
    #[arg(
        long,
        global = true,
        alias = "db-name",
        env = "PARSEC_DATABASE_NAME",
        default_value = "parsec"
    )]
    database_name: String,
    /// Postgres user.
    #[arg(
        long,
        global = true,
        alias = "db-user",
        env = "PARSEC_DATABASE_USER",
        default_value = "parsec"
    )]
    database_user: String,
    /// Postgres password.
    #[arg(
        long,
        global = true,
        alias = "db-password",
        env = "PARSEC_DATABASE_PASSWORD",
        default_value = "",
        hide_env_values = true,
        hide_default_value = true
    )]
    database_password: String,
    /// Postgres SSL mode, as libpq's: disable, prefer (plain text here), require (encrypted),
    /// verify-ca (and the certificate checked), verify-full (and the host name too).
    #[arg(
        long,
        global = true,
        alias = "db-sslmode",
        env = "PARSEC_DATABASE_SSL_MODE",
        default_value = "disable"
    )]
    database_ssl_mode: String,
    /// Root certificates (PEM) that verify-ca and verify-full check the server against, e.g. the
    /// RDS bundle; default: the Mozilla roots.
    #[arg(long, global = true, env = "PARSEC_DATABASE_SSL_ROOT_CERT")]
    database_ssl_root_cert: Option<PathBuf>,
    /// The embedded SQLite file used when no Postgres is configured.
    #[arg(
        long,
        global = true,
        env = "PARSEC_SQLITE_PATH",
        default_value = "parsec.sqlite"
    )]
    sqlite_path: PathBuf,
    /// Apply no database migrations at start, and refuse a database that lacks some: on a shared
    /// database, run `parsec migrate` once instead.
    #[arg(long, global = true, env = "PARSEC_DATABASE_NO_MIGRATE")]
    no_migrate: bool,
}

impl DatabaseArgs {
    /// What opening the database at start may do to its schema.
    pub fn schema_policy(&self) -> SchemaPolicy {
        if self.no_migrate {
            SchemaPolicy::Existing
        } else {
            SchemaPolicy::Migrate
        }
    }

    /// The settings these flags give.
    pub fn settings(&self) -> DatabaseSettings {
        DatabaseSettings {
            url: self.database_url.clone(),
            host: self.database_host.clone(),
            port: self.database_port,
            name: self.database_name.clone(),
            user: self.database_user.clone(),
            password: self.database_password.clone(),
            ssl_mode: self.database_ssl_mode.clone(),
            ssl_root_cert: self.database_ssl_root_cert.clone(),
            sqlite_path: self.sqlite_path.clone(),
        }
    }

    /// The database these flags select.
    pub fn target(&self) -> Result<DatabaseTarget, DbError> {
        self.settings().target()
    }
}

/// Where `/metrics` is served (`PARSEC_TELEMETRY_HOST`/`PARSEC_TELEMETRY_PORT`, as parsec).
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Address of the Prometheus `/metrics` endpoint.
    #[arg(long, global = true, env = "PARSEC_TELEMETRY_HOST", default_value = "0.0.0.0")]
    telemetry_host: std::net::IpAddr,
    /// Port of the `/metrics` endpoint (0: any free port, logged at start).
    #[arg(long, global = true, env = "PARSEC_TELEMETRY_PORT", default_value_t = 9464)]
    telemetry_port: u16,
}

impl TelemetryArgs {
    /// The endpoint these flags give.
    pub fn endpoint(&self) -> MetricsEndpoint {
        MetricsEndpoint {
            host: self.telemetry_host,
            port: self.telemetry_port,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        database: DatabaseArgs,
    }

    fn target(args: &[&str]) -> Result<DatabaseTarget, DbError> {
        let mut argv = vec!["parsec"];
        argv.extend(args);
        Cli::try_parse_from(argv).unwrap().database.target()
    }

    #[test]
    fn defaults_to_the_embedded_file() {
        // Environment variables would change the answer; the test process does not set them.
        if std::env::var_os("DATABASE_URL").is_some() || std::env::var_os("PARSEC_DATABASE_HOST").is_some() {
            return;
        }
        assert_eq!(
            target(&[]).unwrap(),
            DatabaseTarget::Sqlite {
                path: "parsec.sqlite".into()
            }
        );
    }

    #[test]
    fn parsec_variables_build_an_escaped_postgres_url() {
        let target = target(&[
            "--database-host",
            "db.internal",
            "--database-password",
            "p@ss/word",
            "--database-name",
            "measurements",
        ])
        .unwrap();
        let DatabaseTarget::Postgres { url } = &target else {
            panic!("expected Postgres, got {target:?}");
        };
        assert_eq!(
            url,
            "postgres://parsec:p%40ss%2Fword@db.internal:5432/measurements?sslmode=disable"
        );
        assert_eq!(
            target.to_string(),
            "postgres://parsec:***@db.internal:5432/measurements?sslmode=disable"
        );
    }

    #[test]
    fn bad_urls_and_tls_modes_are_explained() {
        let error = target(&["--database-url", "mysql://x"]).unwrap_err().to_string();
        assert!(error.contains("use postgres:// or sqlite://"), "{error}");
        let error = target(&["--database-url", "postgres://h/db?sslmode=allow"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("not supported"), "{error}");
        assert!(target(&["--database-url", "postgres://h/db?sslmode=verify-full"]).is_ok());
        assert!(target(&["--database-url", "sqlite://"]).is_err());
        assert_eq!(
            target(&["--database-url", "sqlite:///tmp/x.sqlite"]).unwrap(),
            DatabaseTarget::Sqlite {
                path: "/tmp/x.sqlite".into()
            }
        );
    }
}
