//! A throwaway PostgreSQL cluster for tests and benchmarks, started from the system's own
//! binaries (initdb + pg_ctl in a temporary directory, on a free loopback port) and removed on
//! drop. `initdb` refuses to run as root, so as root the cluster runs as the `postgres` user.

use std::{net::TcpListener, path::PathBuf, process::Command};

use tempfile::TempDir;

/// Where Debian and Ubuntu install the server binaries, one folder per major version.
const DEBIAN_BIN_DIRS: &str = "/usr/lib/postgresql";

/// Set to a folder holding `initdb` and `pg_ctl` to use other binaries.
pub const BIN_DIR_VAR: &str = "PARSEC_PG_BIN_DIR";

/// Why the cluster could not be started or stopped.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ThrowawayError(String);

/// Settings that make a test cluster fast; durability is irrelevant to a cluster thrown away.
const FAST: &[&str] = &["fsync=off", "synchronous_commit=off", "full_page_writes=off"];

/// A running PostgreSQL cluster that is deleted on drop.
#[derive(Debug)]
pub struct TempPostgres {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    settings: Vec<String>,
    as_postgres_user: bool,
}

impl TempPostgres {
    /// Starts a cluster tuned for tests (`fsync=off`).
    pub fn start() -> Result<Self, ThrowawayError> {
        Self::start_with(FAST)
    }

    /// Starts a cluster with Postgres's durable defaults (for benchmarks worth quoting).
    pub fn start_durable() -> Result<Self, ThrowawayError> {
        Self::start_with(&[])
    }

    /// Starts a test cluster that accepts only TLS connections, with this certificate chain and
    /// key (PEM): `hostssl` is trusted, `hostnossl` rejected.
    pub fn start_tls_only(certificate_pem: &str, key_pem: &str) -> Result<Self, ThrowawayError> {
        let mut cluster = Self::create(FAST)?;
        let certificate = cluster.write_private("server.crt", certificate_pem)?;
        let key = cluster.write_private("server.key", key_pem)?;
        let hba = cluster.write_private(
            "pg_hba_tls.conf",
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n",
        )?;
        cluster.settings.extend([
            "ssl=on".to_owned(),
            format!("ssl_cert_file={certificate}"),
            format!("ssl_key_file={key}"),
            format!("hba_file={hba}"),
        ]);
        cluster.initialise()?;
        Ok(cluster)
    }

    fn start_with(settings: &[&str]) -> Result<Self, ThrowawayError> {
        let mut cluster = Self::create(settings)?;
        cluster.initialise()?;
        Ok(cluster)
    }

    /// A cluster directory, not yet initialised.
    fn create(settings: &[&str]) -> Result<Self, ThrowawayError> {
        let bin = find_bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("parsec-pg-")
            .tempdir()
            .map_err(|e| ThrowawayError(format!("creating a temporary directory: {e}")))?;
        let as_postgres_user = running_as_root();
        if as_postgres_user {
            run(Command::new("chown").arg("postgres:").arg(dir.path()), "chown")?;
        }
        Ok(Self {
            dir,
            bin,
            port: free_port()?,
            settings: settings.iter().map(|s| (*s).to_owned()).collect(),
            as_postgres_user,
        })
    }

    /// Writes `contents` to `name` in the cluster's directory, readable by the server alone
    /// (Postgres refuses a key file others can read); returns its path.
    fn write_private(&self, name: &str, contents: &str) -> Result<String, ThrowawayError> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).map_err(|e| ThrowawayError(format!("writing {name}: {e}")))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| ThrowawayError(format!("chmod {name}: {e}")))?;
        if self.as_postgres_user {
            run(Command::new("chown").arg("postgres:").arg(&path), "chown")?;
        }
        Ok(path.to_string_lossy().into_owned())
    }

    /// Runs initdb and starts the server on a free port.
    fn initialise(&mut self) -> Result<(), ThrowawayError> {
        let cluster = &*self;
        cluster.run_tool(
            "initdb",
            &[
                "-D",
                &cluster.data_dir(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        self.start_on_a_free_port()
    }

    /// Starts the server on the port picked, or on a new one when another process took it
    /// between our pick and the server's bind (tests start clusters and servers in parallel).
    fn start_on_a_free_port(&mut self) -> Result<(), ThrowawayError> {
        for _ in 1..PORT_ATTEMPTS {
            match self.resume() {
                Err(e) if e.0.contains("Address already in use") => self.port = free_port()?,
                started => return started,
            }
        }
        self.resume()
    }

    /// The URL of the cluster's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown: connections are cut), keeping the data.
    pub fn pause(&self) -> Result<(), ThrowawayError> {
        self.run_tool("pg_ctl", &["-D", &self.data_dir(), "-m", "fast", "-w", "stop"])
    }

    /// Starts the server again on the same port.
    pub fn resume(&self) -> Result<(), ThrowawayError> {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        for setting in &self.settings {
            options.push_str(" -c ");
            options.push_str(setting);
        }
        let log = self.dir.path().join("postgres.log");
        let started = self.run_tool(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-l",
                &log.to_string_lossy(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        started.map_err(|e| {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(10).collect();
            ThrowawayError(format!(
                "{e}\nserver log (last lines, newest first):\n{}",
                tail.join("\n")
            ))
        })
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    fn run_tool(&self, tool: &str, args: &[&str]) -> Result<(), ThrowawayError> {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        command.args(args).current_dir(self.dir.path());
        run(&mut command, tool)
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        // Immediate: the data is thrown away anyway. A server already stopped just fails here.
        let _ = self.run_tool(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"],
        );
    }
}

fn run(command: &mut Command, what: &str) -> Result<(), ThrowawayError> {
    let output = command
        .output()
        .map_err(|e| ThrowawayError(format!("running {what}: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(ThrowawayError(format!(
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )))
}

fn find_bin_dir() -> Result<PathBuf, ThrowawayError> {
    if let Some(dir) = std::env::var_os(BIN_DIR_VAR) {
        return Ok(dir.into());
    }
    let newest = std::fs::read_dir(DEBIAN_BIN_DIRS)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .max();
    newest.map(|(_, bin)| bin).ok_or_else(|| {
        ThrowawayError(format!(
            "PostgreSQL server binaries (initdb, pg_ctl) not found in {DEBIAN_BIN_DIRS}/<version>/bin: \
             install them with `apt-get install -y postgresql`, or set {BIN_DIR_VAR} to their folder"
        ))
    })
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Ports tried before giving up on starting a cluster.
const PORT_ATTEMPTS: usize = 5;

fn free_port() -> Result<u16, ThrowawayError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| ThrowawayError(format!("finding a free port: {e}")))
}
