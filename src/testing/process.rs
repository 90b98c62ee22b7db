//! `parsec` processes as users run them: servers that log their addresses, schedulers whose
//! output is kept for assertions.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::{Duration, Instant},
};

/// The `parsec` binary Cargo built beside the running test or benchmark (`target/<profile>/`,
/// one folder above their `deps/`); `PARSEC_BIN` names another.
pub fn parsec_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PARSEC_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("cannot locate this executable: {e}"));
    let profile_dir = exe
        .parent()
        .and_then(|dir| {
            if dir.ends_with("deps") {
                dir.parent()
            } else {
                Some(dir)
            }
        })
        .unwrap_or_else(|| panic!("{} has no parent folder", exe.display()));
    profile_dir.join(format!("parsec{}", std::env::consts::EXE_SUFFIX))
}

/// Many processes share this machine: each serves metrics on a port of its own, logged at start.
const TELEMETRY_ON_ANY_PORT: [&str; 4] = ["--telemetry-host", "127.0.0.1", "--telemetry-port", "0"];

/// A running `parsec server dht` with what it logged at start.
#[derive(Debug)]
pub struct ServerProcess {
    pub child: Child,
    pub http: String,
    pub tcp_multiaddr: String,
    /// `host:port` of its Prometheus endpoint.
    pub metrics: String,
    /// The last [`SERVER_LOG_LINES`] lines it logged, for a failing test to show.
    log: Arc<Mutex<VecDeque<String>>>,
}

/// How many of a server's last log lines are kept.
const SERVER_LOG_LINES: usize = 2000;

impl ServerProcess {
    /// A DHT-server-mode server on loopback with OS-chosen ports, plus `extra` flags.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_with_env(extra, &[])
    }

    /// As [`start`](Self::start), with environment variables.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(parsec_binary())
            .args([
                "server",
                "dht",
                "--server-host",
                "127.0.0.1",
                "--server-port",
                "0",
            ])
            .args([
                "--peer-host",
                "127.0.0.1",
                "--peer-port",
                "0",
                "--server-mode",
                "--network",
                "local",
            ])
            .args(TELEMETRY_ON_ANY_PORT)
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(SERVER_LOG_LINES)));
        let kept = log.clone();
        let (lines_tx, lines) = mpsc::channel::<String>();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut http, mut tcp_multiaddr, mut metrics) = (None, None, None);
        while http.is_none() || tcp_multiaddr.is_none() || metrics.is_none() {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("server logged its addresses");
            keep_line(&kept, line.clone());
            if let Some(address) = line.split("address=").nth(1) {
                if line.contains("HTTP API listening") {
                    http = Some(format!("http://{address}"));
                } else if line.contains("metrics at") {
                    metrics = Some(address.to_owned());
                } else if address.contains("/tcp/") {
                    tcp_multiaddr = Some(address.to_owned());
                }
            }
        }
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            while let Ok(line) = lines.recv() {
                keep_line(&kept, line);
            }
        });
        ServerProcess {
            child,
            http: http.unwrap(),
            tcp_multiaddr: tcp_multiaddr.unwrap(),
            metrics: metrics.unwrap(),
            log,
        }
    }

    /// Its last log lines.
    pub fn log(&self) -> String {
        let lines = self.log.lock().unwrap();
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// Whether `parsec health` says the server is ready.
    pub fn health(&self) -> bool {
        Command::new(parsec_binary())
            .args(["health", &self.http])
            .output()
            .unwrap()
            .status
            .success()
    }

    /// Waits until every one of `servers` is ready, failing the test at `deadline`.
    pub fn wait_until_ready(servers: &[&ServerProcess], deadline: std::time::Instant) {
        while !servers.iter().all(|server| server.health()) {
            assert!(std::time::Instant::now() < deadline, "servers never became ready");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self) -> ExitStatus {
        signal(&self.child, "TERM");
        wait_exit(&mut self.child, Duration::from_secs(20)).expect("server ignored SIGTERM")
    }

    /// SIGKILL: the process gets no chance to mark itself offline.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Servers of one fleet on loopback forming one DHT (each joins through the first), sharing
/// the database at `database_url`, heartbeating every 200 ms.
pub fn start_fleet(
    count: usize,
    fleet: &str,
    database_url: &str,
    env: &[(&str, &str)],
) -> Vec<ServerProcess> {
    start_joining(count, fleet, database_url, env, None)
}

/// As [`start_fleet`], joining the DHT through `bootstrap` when given.
pub fn start_joining(
    count: usize,
    fleet: &str,
    database_url: &str,
    env: &[(&str, &str)],
    bootstrap: Option<&str>,
) -> Vec<ServerProcess> {
    let common = [
        "--database-url",
        database_url,
        "--heartbeat-interval",
        "200ms",
        "--fleet",
        fleet,
    ];
    let mut servers: Vec<ServerProcess> = Vec::new();
    for _ in 0..count {
        let join = bootstrap
            .map(str::to_owned)
            .or_else(|| servers.first().map(|s| s.tcp_multiaddr.clone()));
        let mut args = common.to_vec();
        if let Some(join) = &join {
            args.extend(["--bootstrap", join]);
        }
        servers.push(ServerProcess::start_with_env(&args, env));
    }
    servers
}

fn keep_line(log: &Mutex<VecDeque<String>>, line: String) {
    let mut lines = log.lock().unwrap();
    if lines.len() == SERVER_LOG_LINES {
        lines.pop_front();
    }
    lines.push_back(line);
}

/// A `parsec scheduler` whose stdout and stderr are collected.
#[derive(Debug)]
pub struct SchedulerProcess {
    child: Child,
    log: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

impl SchedulerProcess {
    /// `parsec scheduler` against `database_url` with `args`.
    pub fn start(database_url: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(parsec_binary())
            .arg("scheduler")
            .args(["--database-url", database_url])
            .args(TELEMETRY_ON_ANY_PORT)
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let collect = |mut from: Box<dyn Read + Send>| {
            let into = Arc::new(Mutex::new(String::new()));
            let sink = into.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&mut from);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    sink.lock().unwrap().push_str(&line);
                    line.clear();
                }
            });
            into
        };
        let log = collect(Box::new(child.stderr.take().unwrap()));
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        Self { child, log, stdout }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `host:port` of its Prometheus endpoint, once it has logged it.
    pub fn metrics(&self) -> Option<String> {
        let log = self.log();
        let line = log.lines().find(|l| l.contains("metrics at"))?;
        Some(line.split("address=").nth(1)?.trim().to_owned())
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for it to exit by itself (`--rounds`); returns the status and its summary line.
    pub fn wait(mut self, timeout: Duration) -> (ExitStatus, String) {
        let status = wait_exit(&mut self.child, timeout)
            .unwrap_or_else(|| panic!("scheduler still running after {timeout:?}:\n{}", self.log()));
        // Let the reader threads take the last lines.
        std::thread::sleep(Duration::from_millis(200));
        let stdout = self.stdout.lock().unwrap().clone();
        (status, stdout)
    }

    /// Sends it the signal `name` (`TERM`, `INT`, ...).
    pub fn signal(&self, name: &str) {
        signal(&self.child, name);
    }

    /// SIGTERM, then [`wait`](Self::wait).
    pub fn terminate(self, timeout: Duration) -> (ExitStatus, String) {
        signal(&self.child, "TERM");
        self.wait(timeout)
    }
}

impl Drop for SchedulerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The figure before `label` in a scheduler's summary line (`… 6 rounds run, 0 failed, …`).
pub fn summary_figure(summary: &str, label: &str) -> u64 {
    summary
        .split(", ")
        .flat_map(|part| part.rsplit(": ").next())
        .find_map(|part| part.strip_suffix(label).and_then(|n| n.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {label:?} in {summary:?}"))
}

/// The path of a system tool the tests need; panics naming the Debian package to install.
pub fn installed(name: &str, package: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("{name} is missing: apt-get install -y {package} (.ci/run does)"))
}

fn signal(child: &Child, name: &str) {
    Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The standard output of a finished command; panics with both outputs if it failed.
pub fn expect_success(output: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Polls `predicate` every 100 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut predicate: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if predicate() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
