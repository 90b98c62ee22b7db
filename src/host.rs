//! What a server says about itself when it registers: CPU, memory and private IP (from the ECS
//! task metadata endpoint when running on ECS, from the host otherwise), region, command line
//! and the versions it was built from.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, UdpSocket},
    time::Duration,
};

use parsec_actors::NodeRegistration;
use serde::Deserialize;

#[allow(dead_code, clippy::all, clippy::pedantic, unreachable_pub)]
mod built_info {
    include!(concat!(env!("OUT_DIR"), "/built.rs"));
}

/// The commit this binary was built from (12 digits; `unknown` outside a git checkout unless
/// the build set `PARSEC_GIT_COMMIT`).
pub const GIT_COMMIT: &str = env!("PARSEC_GIT_COMMIT");

/// `parsec --version`: the version, the commit and when it was built, so that builds can be told
/// apart.
pub fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        format!(
            "{} (commit {GIT_COMMIT}, built {})",
            built_info::PKG_VERSION,
            built_info::BUILT_TIME_UTC
        )
    })
}

/// The JSON document itself (parsec reads this variable when set).
pub const ECS_METADATA_VAR: &str = "ECS_CONTAINER_METADATA";
/// The URL of the ECS task metadata endpoint v4.
pub const ECS_METADATA_URI_VAR: &str = "ECS_CONTAINER_METADATA_URI_V4";

/// Crates whose versions identify what a node measures with.
const REPORTED_CRATES: &[&str] = &[
    "libp2p",
    "libp2p-kad",
    "libp2p-swarm",
    "libp2p-quic",
    "libp2p-tcp",
    "libp2p-noise",
    "libp2p-yamux",
    "actix",
    "actix-web",
    "diesel",
    "diesel-async",
    "tokio",
];

/// The versions of parsec and the crates in [`REPORTED_CRATES`] this binary was built with.
pub fn dependencies() -> BTreeMap<String, String> {
    let mut versions: BTreeMap<String, String> = built_info::DEPENDENCIES
        .iter()
        .filter(|(name, _)| REPORTED_CRATES.contains(name))
        .map(|(name, version)| ((*name).to_owned(), (*version).to_owned()))
        .collect();
    versions.insert("parsec".into(), built_info::PKG_VERSION.into());
    versions.insert("parsec_commit".into(), GIT_COMMIT.into());
    versions.insert("rustc".into(), built_info::RUSTC_VERSION.into());
    versions
}

/// CPU, memory and address of the machine a server runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resources {
    /// CPUs (ECS: the container's CPU limit as ECS reports it).
    pub cpu: i32,
    /// Memory in MB.
    pub memory_mb: i32,
    /// The address other machines reach this one at.
    pub ip_address: IpAddr,
}

/// Part of the ECS container metadata (the layout is in parsec's README).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EcsContainerMetadata {
    #[serde(default)]
    limits: EcsLimits,
    #[serde(default)]
    networks: Vec<EcsNetwork>,
}

/// Limits as ECS reports them; a container whose task sets them only at task level reports
/// zero or nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EcsLimits {
    #[serde(rename = "CPU", default)]
    cpu: f64,
    #[serde(default)]
    memory: f64,
}

/// Part of the ECS task metadata (`${ECS_CONTAINER_METADATA_URI_V4}/task`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EcsTaskMetadata {
    #[serde(default)]
    limits: EcsLimits,
}

/// CPU units per vCPU: container limits are in units, task limits in vCPUs.
const CPU_UNITS_PER_VCPU: f64 = 1024.0;

#[derive(Debug, Deserialize)]
struct EcsNetwork {
    #[serde(rename = "NetworkMode")]
    network_mode: String,
    #[serde(rename = "IPv4Addresses", default)]
    ipv4_addresses: Vec<Ipv4Addr>,
}

/// Reads the resources from ECS container metadata JSON: the limits, and the first IPv4 address
/// of the first `awsvpc` network (parsec's heuristic). Where the container reports no limits
/// (they are set for the task only), the task metadata's are used, its vCPUs as CPU units.
pub fn resources_from_ecs_metadata(json: &str, task_json: Option<&str>) -> Result<Resources, String> {
    let mut metadata: EcsContainerMetadata =
        serde_json::from_str(json).map_err(|e| format!("invalid ECS container metadata: {e}"))?;
    if let Some(task_json) = task_json {
        let task: EcsTaskMetadata =
            serde_json::from_str(task_json).map_err(|e| format!("invalid ECS task metadata: {e}"))?;
        if metadata.limits.cpu <= 0.0 {
            metadata.limits.cpu = task.limits.cpu * CPU_UNITS_PER_VCPU;
        }
        if metadata.limits.memory <= 0.0 {
            metadata.limits.memory = task.limits.memory;
        }
    }
    let ip = metadata
        .networks
        .iter()
        .filter(|n| n.network_mode == "awsvpc")
        .find_map(|n| n.ipv4_addresses.first())
        .ok_or("ECS container metadata has no awsvpc network with an IPv4 address")?;
    Ok(Resources {
        cpu: metadata.limits.cpu.round() as i32,
        memory_mb: metadata.limits.memory.round() as i32,
        ip_address: IpAddr::V4(*ip),
    })
}

/// The resources of this machine: from ECS metadata when the ECS variables are set, otherwise
/// from the host. `listen` is the HTTP API's address: used as is unless it is unspecified.
pub async fn detect_resources(listen: IpAddr) -> Result<Resources, String> {
    if let Ok(json) = std::env::var(ECS_METADATA_VAR) {
        return resources_from_ecs_metadata(&json, None);
    }
    if let Ok(uri) = std::env::var(ECS_METADATA_URI_VAR) {
        let json = fetch_ecs_metadata(&uri).await?;
        let container = resources_from_ecs_metadata(&json, None)?;
        if container.cpu > 0 && container.memory_mb > 0 {
            return Ok(container);
        }
        let task = fetch_ecs_metadata(&format!("{}/task", uri.trim_end_matches('/'))).await?;
        return resources_from_ecs_metadata(&json, Some(&task));
    }
    Ok(Resources {
        cpu: std::thread::available_parallelism().map_or(1, |n| n.get() as i32),
        memory_mb: host_memory_mb().unwrap_or(0),
        ip_address: if listen.is_unspecified() {
            primary_ip().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
        } else {
            listen
        },
    })
}

async fn fetch_ecs_metadata(uri: &str) -> Result<String, String> {
    let client = awc::Client::builder().timeout(Duration::from_secs(5)).finish();
    let mut response = client
        .get(uri)
        .send()
        .await
        .map_err(|e| format!("reading ECS metadata from {uri}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!(
            "ECS metadata endpoint {uri} answered {}",
            response.status()
        ));
    }
    let body = response
        .body()
        .limit(1 << 20)
        .await
        .map_err(|e| format!("reading ECS metadata from {uri}: {e}"))?;
    String::from_utf8(body.to_vec()).map_err(|e| format!("ECS metadata is not UTF-8: {e}"))
}

/// Total memory in MB from /proc/meminfo.
fn host_memory_mb() -> Option<i32> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    i32::try_from(kib / 1024).ok()
}

/// The address of the interface that routes to the outside (no packet is sent: connecting a
/// UDP socket only selects the route).
fn primary_ip() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?; // TEST-NET-1: never routed anywhere real
    socket.local_addr().ok().map(|a| a.ip())
}

/// The port of a peer's first TCP or UDP listen address (0 for in-memory peers).
pub fn peer_port(listen_addrs: &[parsec_actors::Multiaddr]) -> u16 {
    use parsec_actors::multiaddr::Protocol;
    listen_addrs
        .iter()
        .flat_map(|address| address.iter())
        .find_map(|p| match p {
            Protocol::Tcp(port) | Protocol::Udp(port) => Some(port),
            _ => None,
        })
        .unwrap_or(0)
}

/// A server's registration from what it knows and what the host says.
pub fn registration(
    resources: Resources,
    peer_id: String,
    fleet: String,
    server_port: u16,
    peer_port: u16,
) -> NodeRegistration {
    NodeRegistration {
        cpu: resources.cpu,
        memory_mb: resources.memory_mb,
        peer_id,
        region: std::env::var("AWS_REGION").unwrap_or_default(),
        cmd: redacted_command_line(std::env::args()),
        fleet,
        dependencies: dependencies(),
        ip_address: resources.ip_address,
        server_port,
        peer_port,
    }
}

/// The command line as stored in `nodes_ecs.cmd`, readable by every analyst: values of flags
/// that carry secrets (tokens, passwords, private keys such as `--identity-key`) are replaced,
/// and so are passwords inside URLs.
pub fn redacted_command_line(args: impl IntoIterator<Item = String>) -> String {
    let secret_flag = |flag: &str| {
        flag.starts_with("--")
            && ["token", "password", "key", "secret"]
                .iter()
                .any(|word| flag.contains(word))
    };
    let mut redacted = Vec::new();
    let mut hide_next = false;
    for arg in args {
        let shown = if std::mem::take(&mut hide_next) {
            "***".to_owned()
        } else if let Some((flag, _)) = arg.split_once('=').filter(|(flag, _)| secret_flag(flag)) {
            format!("{flag}=***")
        } else if secret_flag(&arg) {
            hide_next = true;
            arg
        } else {
            match url::Url::parse(&arg) {
                Ok(mut url) if url.password().is_some() => {
                    let _ = url.set_password(Some("***"));
                    url.to_string()
                }
                _ => arg,
            }
        };
        redacted.push(shown);
    }
    redacted.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_reach_the_stored_command_line() {
        let args = [
            "parsec",
            "server",
            "dht",
            "--api-token",
            "s3cret",
            "--database-password=hunter2",
            "--database-url",
            "postgres://parsec:pw@db:5432/parsec",
            "--fleet",
            "default",
            "--identity-key",
            "e3592d0c131982c26a9ec7e065e870e9c579138810f9cdaef476f98f48484565",
        ]
        .map(String::from);
        let cmd = redacted_command_line(args);
        assert_eq!(
            cmd,
            "parsec server dht --api-token *** --database-password=*** --database-url \
             postgres://parsec:***@db:5432/parsec --fleet default --identity-key ***"
        );
    }

    /// The example from parsec's README.
    const ECS_EXAMPLE: &str = r#"{
        "DockerId": "ea32192c8553fbff06c9340478a2ff089b2bb5646fb718b4ee206641c9086d66",
        "Name": "curl",
        "Limits": { "CPU": 10, "Memory": 128 },
        "Networks": [
            { "NetworkMode": "bridge", "IPv4Addresses": ["172.17.0.2"] },
            {
                "NetworkMode": "awsvpc",
                "IPv4Addresses": ["10.0.2.100"],
                "AttachmentIndex": 0,
                "IPv4SubnetCIDRBlock": "10.0.2.0/24"
            }
        ]
    }"#;

    #[test]
    fn ecs_metadata_gives_limits_and_the_awsvpc_address() {
        let resources = resources_from_ecs_metadata(ECS_EXAMPLE, None).unwrap();
        assert_eq!(
            resources,
            Resources {
                cpu: 10,
                memory_mb: 128,
                ip_address: "10.0.2.100".parse().unwrap()
            }
        );
    }

    /// A task that sets CPU and memory only at task level (as the ECS sketch in the docs did):
    /// the container reports no limits, the task metadata does, in vCPUs.
    #[test]
    fn task_level_limits_fill_in_for_missing_container_limits() {
        let container = r#"{"Limits": {"CPU": 0}, "Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": ["10.0.2.7"]}]}"#;
        let task = r#"{"Cluster": "parsec", "Limits": {"CPU": 0.5, "Memory": 2048}}"#;
        let resources = resources_from_ecs_metadata(container, Some(task)).unwrap();
        assert_eq!((resources.cpu, resources.memory_mb), (512, 2048));
        let without_task = resources_from_ecs_metadata(container, None).unwrap();
        assert_eq!(without_task.memory_mb, 0);
    }

    #[test]
    fn ecs_metadata_without_awsvpc_is_an_error() {
        let json = r#"{"Limits": {"CPU": 2, "Memory": 512}, "Networks": []}"#;
        assert!(resources_from_ecs_metadata(json, None)
            .unwrap_err()
            .contains("awsvpc"));
        assert!(resources_from_ecs_metadata("{", None)
            .unwrap_err()
            .contains("invalid"));
    }

    #[test]
    fn dependencies_name_the_dht_implementation() {
        let deps = dependencies();
        assert!(
            deps.get("libp2p-kad").is_some_and(|v| v.starts_with("0.49")),
            "{deps:?}"
        );
        assert_eq!(deps["parsec"], env!("CARGO_PKG_VERSION"));
    }

    #[actix::test]
    async fn host_detection_uses_a_specific_listen_address() {
        let listen: IpAddr = "10.1.2.3".parse().unwrap();
        if std::env::var_os(ECS_METADATA_VAR).is_some() || std::env::var_os(ECS_METADATA_URI_VAR).is_some() {
            return;
        }
        let resources = detect_resources(listen).await.unwrap();
        assert_eq!(resources.ip_address, listen);
        assert!(resources.cpu >= 1 && resources.memory_mb > 0, "{resources:?}");
    }
}
