//! Database settings: which store, and how to reach it.

use std::path::PathBuf;

use super::{DatabaseTarget, DbError};

/// Where to store data. Postgres when a URL or a Postgres host is set; otherwise the embedded
/// SQLite file. The command line fills it from parsec's flags and variables (`cli::global`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// postgres://user:password@host:port/name, or sqlite://path/to/file.
    pub url: Option<String>,
    /// Postgres host; setting it selects Postgres.
    pub host: Option<String>,
    /// Postgres port.
    pub port: u16,
    /// Postgres database name.
    pub name: String,
    /// Postgres user.
    pub user: String,
    /// Postgres password (empty: none).
    pub password: String,
    /// libpq's sslmode: disable, prefer, require, verify-ca, verify-full.
    pub ssl_mode: String,
    /// Root certificates (PEM) for verify-ca and verify-full; default: the Mozilla roots.
    pub ssl_root_cert: Option<PathBuf>,
    /// The embedded SQLite file used when no Postgres is configured.
    pub sqlite_path: PathBuf,
}

impl DatabaseSettings {
    /// The database these settings select.
    pub fn target(&self) -> Result<DatabaseTarget, DbError> {
        if let Some(url) = &self.url {
            return parse_url(url);
        }
        let Some(host) = &self.host else {
            return Ok(DatabaseTarget::Sqlite {
                path: self.sqlite_path.clone(),
            });
        };
        check_ssl_mode(&self.ssl_mode)?;
        let mut url = url::Url::parse("postgres://localhost")
            .map_err(|e| DbError::Config(format!("building the URL: {e}")))?;
        let invalid = |what: &str| DbError::Config(format!("invalid {what} for a Postgres URL"));
        url.set_host(Some(host))
            .map_err(|_| invalid("PARSEC_DATABASE_HOST"))?;
        url.set_port(Some(self.port)).map_err(|()| invalid("port"))?;
        url.set_username(&self.user).map_err(|()| invalid("user"))?;
        if !self.password.is_empty() {
            url.set_password(Some(&self.password))
                .map_err(|()| invalid("password"))?;
        }
        url.set_path(&self.name);
        url.query_pairs_mut().append_pair("sslmode", &self.ssl_mode);
        if let Some(root_cert) = &self.ssl_root_cert {
            url.query_pairs_mut()
                .append_pair("sslrootcert", &root_cert.to_string_lossy());
        }
        Ok(DatabaseTarget::Postgres { url: url.into() })
    }
}

fn parse_url(url: &str) -> Result<DatabaseTarget, DbError> {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            return Err(DbError::Config(
                "sqlite:// needs a file path, e.g. sqlite://parsec.sqlite".into(),
            ));
        }
        return Ok(DatabaseTarget::Sqlite { path: path.into() });
    }
    let parsed = url::Url::parse(url).map_err(|e| {
        DbError::Config(format!(
            "database URL is not a URL ({e}); expected postgres://user:password@host:5432/name or sqlite://file"
        ))
    })?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(DbError::Config(format!(
            "unsupported database scheme {:?}; use postgres:// or sqlite://",
            parsed.scheme()
        )));
    }
    if let Some((_, mode)) = parsed.query_pairs().find(|(key, _)| key == "sslmode") {
        check_ssl_mode(&mode)?;
    }
    Ok(DatabaseTarget::Postgres { url: url.to_owned() })
}

fn check_ssl_mode(mode: &str) -> Result<(), DbError> {
    super::tls::SslMode::parse(mode)
        .map(drop)
        .map_err(DbError::Config)
}
