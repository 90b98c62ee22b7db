//! parsec's own (Go) command lines, unchanged.

use super::*;

/// parsec's own command lines, as its Go binary takes them: global flags before the command,
/// its `--db-*` names, `server --fleet … dht …`, `--log-level`, `--debug`, `--startup-delay` and
/// `--dry-run`, against a real PostgreSQL.
#[test]
fn parsecs_command_lines_work_unchanged() {
    let pg = parsec::testing::TempPostgres::start().unwrap_or_else(|e| panic!("{e}"));
    let url = url::Url::parse(&pg.url()).unwrap();
    let port = url.port().unwrap_or(5432).to_string();
    #[rustfmt::skip]
    let db = [
        "--db-host", url.host_str().unwrap(), "--db-port", &port,
        "--db-name", url.path().trim_start_matches('/'), "--db-user", url.username(),
        "--db-password", url.password().unwrap_or(""), "--db-sslmode", "disable",
    ];
    let counts = |url: &str| actix::System::new().block_on(common::postgres_counts(url));
    // The database exists already, as parsec's deployments have it.
    actix::System::new().block_on(async {
        let target = parsec::db::DatabaseTarget::Postgres { url: pg.url() };
        parsec::db::Store::open(&target).await.unwrap();
    });

    // `parsec --db-host X server --fleet f dht --server-mode`, with parsec's startup delay.
    let started = Instant::now();
    let mut server = Command::new(PARSEC)
        .args(db)
        .args(["--log-level", "4", "--telemetry-port", "0"])
        .args(["server", "--fleet", "parsec-cli", "--startup-delay", "1s"])
        .args([
            "--server-host",
            "127.0.0.1",
            "--server-port",
            "0",
            "--peer-port",
            "0",
        ])
        .args(["dht", "--server-mode", "--network", "local"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let registered =
        parsec::testing::process::wait_until(Duration::from_secs(30), || counts(&pg.url()).nodes == 1);
    let waited = started.elapsed();
    let _ = server.kill();
    let _ = server.wait();
    assert!(registered, "the server never registered");
    assert!(
        waited >= Duration::from_secs(1),
        "registered after {waited:?}, before its startup delay"
    );

    // `parsec --debug --dry-run … scheduler`: it runs, and stores nothing, not even itself. Its
    // one server was stopped, so it measures nothing, and says so with its exit code.
    let scheduler = Command::new(PARSEC)
        .args(["--debug", "--dry-run"])
        .args(db)
        .args([
            "--telemetry-port",
            "0",
            "scheduler",
            "--fleets",
            "parsec-cli",
            "--rounds",
            "1",
            "--interval",
            "0s",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&scheduler.stdout);
    let stderr = String::from_utf8_lossy(&scheduler.stderr);
    assert_eq!(scheduler.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("(dry run)"), "{stdout}");
    assert!(
        stderr.contains("error: no round ran to its end (1 failed (most often: no ready node")
            && stderr.contains("nothing was measured"),
        "{stderr}"
    );
    let stored = counts(&pg.url());
    assert_eq!(
        (stored.schedulers, stored.nodes_offline),
        (0, 0),
        "a dry run wrote: {stored:?}"
    );
}
